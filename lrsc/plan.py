"""The plan of a sweep: every run its grid needs, checked before anything trains, and how they group.

:func:`plan` loads a sweep config, checks each grid point against the registries (values,
sizes, the data, the model taking the dataset's inputs, memory) and gives one :class:`Run`
per point, keyed by the hash of its settings (as in DomainBed) and carrying the fingerprints
of the code that makes it (:mod:`lrsc.identity`). :func:`batches` splits the runs into the
work units that train together: runs that differ only in seed and per-model settings and that
the stacked kernel can train (:func:`lrsc.stacked.can_train`) share a unit; every other run is
a unit of its own. Nothing here trains: :mod:`lrsc.worker` does, and :mod:`lrsc.sweep` drives.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from lrsc import config as config_mod
from lrsc import datasets, extensions, identity, models
from lrsc.errors import ConfigError
from lrsc.records import RECORDS
from lrsc.registry import fingerprint
from lrsc.settings import TrainSettings
from lrsc.stacked import can_train
from lrsc.store import name_of

@dataclass(frozen=True)
class Run:
    """One planned run: its complete, normalised config, its hash, its point in the sweep's grid,
    the settings its hash covers (``hashed``, see :func:`lrsc.config.hashed`) and the
    fingerprints of the code that makes it (``code``: ``dataset``, ``model`` and
    ``variables``, ``{name: fingerprint}``; see :mod:`lrsc.identity`)."""

    config: dict
    hash: str
    point: dict
    hashed: dict
    code: dict

    @property
    def settings(self) -> TrainSettings:
        return TrainSettings.from_config(self.config["train"])


@lru_cache(maxsize=64)
def _can_stack(key: str) -> bool:
    run = json.loads(key)
    info = datasets.check(run["dataset"], run["dataset_params"])
    with torch.device("meta"):
        model = models.build(run["model"], input_shape=info.input_shape, num_classes=info.num_classes,
                             **run["model_params"])
    return can_train(model, TrainSettings.from_config(run["train"]))


def can_stack(run: Run) -> bool:
    """Whether the run's model trains through the stacked kernel (:func:`lrsc.stacked.can_train`)."""
    keys = ("dataset", "dataset_params", "model", "model_params", "train")
    return _can_stack(json.dumps({k: run.config[k] for k in keys}, sort_keys=True))


def batches(runs: list[Run], size: int, workers: int = 1) -> list[list[Run]]:
    """Split ``runs`` into units of at most ``size`` runs that can train at once.

    Runs go together when their configs differ only in ``seed`` and the per-model training
    settings, they train through the stacked kernel and they are all plain SGD or all not
    (the kernel's update takes another route for plain SGD); every other run is a unit of its
    own. Units follow the order of their first run. With ``workers`` > 1 the units are split
    further until there are at least as many as workers (a stacked model's numbers do not
    depend on its batch-mates, so splitting changes nothing but the speed).
    """
    groups: dict[str, list[Run]] = {}
    for i, run in enumerate(runs):
        if size > 1 and can_stack(run):
            s = run.settings
            shared = {**run.config, "seed": None, "train": {**s.shared(), "plain": s.plain_sgd}}
            key = json.dumps(shared, sort_keys=True)
        else:
            key = str(i)
        groups.setdefault(key, []).append(run)
    units = [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]
    while len(units) < workers and max(map(len, units), default=1) > 1:
        big = max(units, key=len)
        units[units.index(big):units.index(big) + 1] = [big[:len(big) // 2], big[len(big) // 2:]]
    return units


def one_at_a_time(runs: list[Run]) -> set[str]:
    """The settings that make some of ``runs`` train alone, as ``key=value``: those declared
    ``stacked=False`` (:meth:`lrsc.settings.TrainSettings.loop_only`) set off their default."""
    return {f"{key}={getattr(r.settings, key)}" for r in runs for key in r.settings.loop_only()}



# What a run must hold at once, by setting, in bytes per float32 value: the weights with their
# gradients and optimiser state (4 copies), the training inputs, the training records (one row
# of RECORDS every record_every steps, allocated for max_steps), and Integrated Gradients'
# inputs and their gradients (2 copies of up to ATTR_CHUNK x ig_steps inputs).
FLOAT_BYTES, WEIGHT_COPIES, ATTR_CHUNK = 4, 4, 256
MEMORY_ENV = "LRSC_MEMORY_GB"  # the memory of the machines that train the runs, where it differs from this one's


def memory_ceiling() -> tuple[float, str]:
    """The bytes a run may need at most, and where that number comes from: ``$LRSC_MEMORY_GB``
    when set (e.g. a cluster's nodes), else this machine's physical memory."""
    given = os.environ.get(MEMORY_ENV)
    if given:
        try:
            return float(given) * 2**30, f"{MEMORY_ENV}={given}"
        except ValueError:
            raise ConfigError(f"{MEMORY_ENV} must be a number of GiB, got {given!r}") from None
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory"


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


class Planner:
    """Normalises and checks run configs against the registries, each dataset and model once, and
    fingerprints the code that makes each run (see :mod:`lrsc.identity`)."""

    def __init__(self) -> None:
        self._info: dict[str, datasets.Info] = {}
        self._models: dict[str, tuple[str, int]] = {}  # model key -> (fingerprint, parameter count)
        self.variables = identity.variable_fingerprints()
        self.ceiling = memory_ceiling()

    @staticmethod
    def resolve(raw: dict) -> dict:
        """A run's config normalised, with the dataset's and model's parameters complete and typed."""
        run = config_mod.normalise(raw)
        run["dataset_params"] = datasets.normalise(run["dataset"], run["dataset_params"])
        run["model_params"] = models.normalise(run["model"], run["model_params"])
        return run

    def check_base(self, cfg: dict) -> dict:
        """The sweep's base config (its settings before any grid axis applies) resolved, every
        value checked, even those a grid axis overrides; the dataset's and model's parameters are
        resolved and the dataset's checked unless the grid sweeps the dataset or model itself."""
        base = config_mod.normalise(config_mod.base(cfg))
        if "dataset" not in cfg["grid"]:
            base["dataset_params"] = datasets.normalise(base["dataset"], base["dataset_params"])
            datasets.check(base["dataset"], base["dataset_params"])
        if "model" not in cfg["grid"]:
            base["model_params"] = models.normalise(base["model"], base["model_params"])
        return base

    def prepare(self, raw: dict) -> tuple[dict, dict, dict]:
        """A run's complete, normalised config (dataset and model parameters with their defaults),
        the settings its hash covers, and its code fingerprints; raises ConfigError naming the
        first problem (a bad value, a batch larger than the training set, a run that would need
        more memory than :func:`memory_ceiling`)."""
        run = self.resolve(raw)
        key = repr((run["dataset"], sorted(run["dataset_params"].items())))
        if key not in self._info:
            self._info[key] = datasets.check(run["dataset"], run["dataset_params"])
        info = self._info[key]
        model_key = repr((run["model"], sorted(run["model_params"].items()), key))
        if model_key not in self._models:
            models.check(run["model"], info.input_shape, info.num_classes, run["model_params"])
            self._models[model_key] = self._model_code(run, info)
        model_code, n_params = self._models[model_key]
        if run["train"]["batch_size"] > info.n_train:
            raise ConfigError(f"train.batch_size={run['train']['batch_size']} exceeds the {info.n_train} training "
                              f"samples of {run['dataset']}; use a batch size of at most {info.n_train}")
        self._check_memory(run, info, n_params)
        code = {"dataset": fingerprint(datasets.REGISTRY.get(run["dataset"])[0]), "model": model_code,
                "variables": self.variables}
        return run, self.hashed(run), code

    @staticmethod
    def hashed(run: dict) -> dict:
        """The settings the hash of the resolved run ``run`` covers (:func:`lrsc.config.hashed`, with its
        dataset's and model's parameter defaults): no data is read."""
        defaults = {"dataset_params": datasets.normalise(run["dataset"], {}),
                    "model_params": models.normalise(run["model"], {})}
        return config_mod.hashed(run, defaults)

    @staticmethod
    def _model_code(run: dict, info: datasets.Info) -> tuple[str, int]:
        """The fingerprint of the run's model code (its builder and every class of the model it
        builds, torch's own excepted) and its parameter count, from a model built on the meta device."""
        with torch.device("meta"):
            model = models.build(run["model"], input_shape=info.input_shape, num_classes=info.num_classes,
                                 **run["model_params"])
        classes = sorted({type(m) for m in model.modules() if not type(m).__module__.startswith("torch")},
                         key=lambda c: f"{c.__module__}.{c.__qualname__}")
        return fingerprint(models.REGISTRY.get(run["model"]), *classes), sum(p.numel() for p in model.parameters())

    def _check_memory(self, run: dict, info: datasets.Info, n_params: int) -> None:
        """Refuse a run whose predictable memory exceeds the ceiling, naming the setting that needs most."""
        t, m = run["train"], run["metrics"]
        inputs = math.prod(info.input_shape)
        needs = {
            f"model {run['model']!r} with model_params {run['model_params']} ({n_params:,} parameters, "
            f"{WEIGHT_COPIES} copies with gradients and optimiser state)": n_params * WEIGHT_COPIES,
            f"dataset_params.n_train={info.n_train} (training inputs of {inputs:,} values each)": info.n_train * inputs,
            f"train.max_steps={t['max_steps']} with train.record_every={t['record_every']} ({len(RECORDS)} training "
            f"records every record_every steps)": t["max_steps"] // t["record_every"] * len(RECORDS),
            f"metrics.ig_steps={m['ig_steps']} with metrics.n_attr={m['n_attr']} (Integrated Gradients' inputs and "
            f"gradients)": 2 * min(m["n_attr"], ATTR_CHUNK) * m["ig_steps"] * inputs,
        }
        total = sum(needs.values()) * FLOAT_BYTES
        ceiling, source = self.ceiling
        if total > ceiling:
            setting, largest = max(needs.items(), key=lambda kv: kv[1])
            raise ConfigError(f"a run would need at least {_gib(total)}, more than {source} ({_gib(ceiling)}); most "
                              f"of it ({_gib(largest * FLOAT_BYTES)}) for {setting}: lower that setting (or set "
                              f"{MEMORY_ENV} to the memory of the machines that train the runs)")


def plan(cfg: dict | str | Path, overrides: list[str] | dict | None = None) -> tuple[dict, list[Run]]:
    """Load a sweep config and check every run of its grid before anything runs.

    Returns ``(cfg, runs)``: the config resolved (its base settings complete and normalised,
    the dataset's and model's parameters with their defaults, its grid's values normalised:
    ``lr: 1`` reads ``1.0``), and one :class:`Run` per grid point. The sweep's
    ``plugins`` are imported first (:func:`lrsc.extensions.load_plugins`). Beyond the checks
    of :func:`lrsc.config.load`, the base config and each run's dataset and model are checked by
    their registries (ranges, sizes against the source data, the data root and its layout, the
    model taking the dataset's inputs), its batch size against the training set and its
    predictable memory against :func:`memory_ceiling`. Two grid points that are the same run
    after normalisation (``grid.lr: [1, 1.0]``) are refused. Raises ConfigError naming the first
    problem.
    """
    cfg = config_mod.load(cfg, overrides)
    extensions.load_plugins(cfg.get("plugins", []))
    planner = Planner()
    base = planner.check_base(cfg)
    prepared, seen = [], {}
    for raw, point in zip(config_mod.expand(cfg), config_mod.grid_points(cfg)):
        run, hashed, code = planner.prepare(raw)
        h = name_of(hashed)
        if h in seen:
            raise ConfigError(f"the grid holds one run twice: {seen[h]} and {point} are the same settings once "
                              f"normalised (e.g. 1 and 1.0); list each value once")
        seen[h] = point
        prepared.append((run, h, hashed, code))
    paths = {axis: config_mod.axis_path(axis) for axis in cfg["grid"]}
    grid = {axis: _unique(config_mod.get(run, path) for run, *_ in prepared) for axis, path in paths.items()}
    resolved = {**base, "grid": grid, **{k: cfg[k] for k in config_mod.SWEEP_KEYS if k in cfg and k != "grid"}}
    dims = list(config_mod.axes(resolved))
    return resolved, [Run(run, h, {dim: config_mod.get(run, path) for dim, path in zip(dims, paths.values())},
                          hashed, code) for run, h, hashed, code in prepared]


def _unique(values) -> list:
    """``values`` in first-seen order, each once."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out
