"""Sweeps: a grid of runs, each trained once in the shared run store and collected into one dataset.

``run_sweep(config, out_dir)`` plans every run of the grid (checked and normalised, keyed by
the hash of its settings, as in DomainBed), trains the ones the run store does not hold yet
(the store, ``<results>/runs`` beside ``out_dir`` unless given, is shared by every sweep of
the results folder, so a run any sweep already trained is never trained again), and
collects the grid into ``out_dir/results.nc``. Interrupt it and run it again: finished runs
are kept. Work units run through an engine of :mod:`lrsc.engines`: this process, local
worker processes, Dask or SLURM.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch
import xarray as xr

from lrsc import config as config_mod
from lrsc import datasets, edge, engines, extensions, identity, models, sweepdir
from lrsc.collect import collect, provenance, up_to_date
from lrsc.drive import drive
from lrsc.errors import ConfigError, RunsFailed
from lrsc.heal import check, heal
from lrsc.records import RECORDS
from lrsc.registry import fingerprint
from lrsc.seeding import check_device, pick_device
from lrsc.store import RunStore, State, default_store, name_of
from lrsc.train import check_precision
from lrsc.units import Run, batches, one_at_a_time

MODELS_AT_ONCE = 32  # most runs trained together: bounds the memory of stacked weights and data
# What a run must hold at once, by setting, in bytes per float32 value: the weights with their
# gradients and optimiser state (4 copies), the training inputs, the training records (one row
# of RECORDS every record_every steps, allocated for max_steps), and Integrated Gradients'
# inputs and their gradients (2 copies of up to ATTR_CHUNK x ig_steps inputs).
FLOAT_BYTES, WEIGHT_COPIES, ATTR_CHUNK = 4, 4, 256
MEMORY_ENV = "LRSC_MEMORY_GB"  # the memory of the machines that train the runs, where it differs from this one's
log = logging.getLogger("lrsc")


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
    ``lr: 1`` reads ``1.0``), and one :class:`~lrsc.units.Run` per grid point. Beyond the checks
    of :func:`lrsc.config.load`, the base config and each run's dataset and model are checked by
    their registries (ranges, sizes against the source data, the data root and its layout, the
    model taking the dataset's inputs), its batch size against the training set and its
    predictable memory against :func:`memory_ceiling`. Two grid points that are the same run
    after normalisation (``grid.lr: [1, 1.0]``) are refused. Raises ConfigError naming the first
    problem.
    """
    cfg = config_mod.load(cfg, overrides)
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


def status(out_dir: str | Path) -> tuple[list[tuple[dict, str, State]], str]:
    """Where each run of the sweep in ``out_dir`` stands for the sweep as it would run now:
    ``(grid point, run hash, state)`` per run of its ``sweep.yaml`` planned with the current
    code (outdated runs say why, see :func:`lrsc.heal.check`), and ``""``. When the sweep cannot
    be planned here (its dataset or model is registered only in the session that ran it, or its
    data is gone), the store's states of its ``grid.json`` runs, and a line saying why outdated
    runs were not looked for."""
    try:
        _, runs = plan(sweepdir.read_given(out_dir))
    except ConfigError as e:
        return sweepdir.states(out_dir), f"outdated runs not looked for: its sweep.yaml cannot be planned here ({e})"
    store = RunStore(sweepdir.read_grid(out_dir)["store"])
    return [(run.point, run.hash, check(store, run)[0]) for run in runs], ""


def _unique(values) -> list:
    """``values`` in first-seen order, each once."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def run_sweep(cfg: dict | str | Path, out_dir: str | Path, overrides: list[str] | dict | None = None,
              device: str = "auto", progress: bool = True, models_at_once: int = MODELS_AT_ONCE,
              engine: str = "local", workers: int = 1, retries: int = 2, scheduler: str | None = None,
              slurm: engines.SlurmOptions | None = None, store: str | Path | None = None) -> xr.Dataset:
    """Run (or resume) a sweep and return the collected dataset, also saved as ``out_dir/results.nc``.

    ``cfg`` is a sweep config dict or YAML path, checked in full before anything is written
    (see :func:`plan`). Runs are trained in the run store ``store`` (default: ``runs/`` beside
    ``out_dir``), each at most once across every sweep that shares the store, even sweeps
    running at the same time (a run is claimed before it is trained). A stored run is reused
    only when it is the planned one: same resolved config, same dataset and model code (see
    :mod:`lrsc.identity`); an outdated one is trained again. ``out_dir/sweep.yaml`` keeps the
    config as given (normalised): run it again and it is this sweep. Runs that go through the
    stacked kernel and differ only in seed and per-model settings train up to
    ``models_at_once`` at a time; either way a run's numbers are the same. Stored runs are
    checked first (:func:`lrsc.heal.heal`).

    Units run on ``engine`` (``local``, ``dask``, ``slurm``; see :func:`lrsc.engines.make_executor`)
    with ``workers`` processes; a unit whose worker is lost is retried up to ``retries`` times.
    On SLURM each unit asks for the resources ``slurm`` gives, else the sweep file's
    ``resources``, else its models' (:meth:`lrsc.engines.SlurmOptions.for_sweep`).
    A run that raises is recorded as failed (see ``lrsc status``) and is NaN in the dataset,
    whose ``status`` variable says so; the dataset is still written, then :class:`RunsFailed`
    is raised naming the first failure. The next ``run_sweep`` tries failed runs again.

    An ``lr`` axis written as ``{edge: true, ...}`` is first resolved by probing
    (:func:`lrsc.edge.resolve`): each probed LR is a sweep of its own under ``out_dir/probe/``, on
    the same run store, whose runs the sweep then reuses.
    """
    given = config_mod.read(cfg, overrides)
    loaded = config_mod.load(given)  # every value checked before anything is written
    engines.check_options(engine, workers, scheduler)
    check_device(device)
    if retries < 0:
        raise ConfigError(f"--retries must be at least 0, got {retries}")
    out = sweepdir.check_out(out_dir)
    store = RunStore(store or default_store(out))
    store.check_writable()
    if edge.spec_of(loaded):
        given = edge.resolve(given, lambda lr: run_sweep(
            edge.at_lr(given, lr), out / "probe" / f"lr_{lr:g}", device=device, progress=progress,
            models_at_once=models_at_once, engine=engine, workers=workers, retries=retries, scheduler=scheduler,
            slurm=slurm, store=store.root))
    cfg, runs = plan(given)
    if engine == "local" or device != "auto":  # where the runs will train is known here
        for run in runs:
            check_precision(run.settings, pick_device(device))
    slurm = (slurm or engines.SlurmOptions()).for_sweep(
        cfg.get("resources"), {name: models.resources(name) for name in sorted({r.config["model"] for r in runs})})
    given = config_mod.restrict(cfg, given)  # what was asked for, normalised: rerun as is, it is this sweep
    heal(store, runs, device)
    todo = [r for r in runs if not store.finished(r.hash)]
    if todo:
        alone = one_at_a_time(todo)
        if alone and models_at_once > 1:
            log.info("%s runs train one model at a time: the batched kernel does SGD only (Adam-type optimisers "
                     "keep their own state per weight, ASAM takes a second gradient pass)", ", ".join(sorted(alone)))
        units = batches(todo, models_at_once, workers if engine == "local" else 1)
        with engines.make_executor(engine, workers, device=device, scheduler=scheduler, slurm=slurm,
                                   folder=out / "slurm") as executor:
            sweepdir.write(out, given, cfg, runs, store.root)
            blob = None if executor.in_process else extensions.snapshot()
            drive(executor, units, store, device, retries, blob, str(out), len(runs), progress)
    else:
        sweepdir.write(out, given, cfg, runs, store.root)
    results = None if todo else up_to_date(out)  # a sweep asked for again: its results.nc, unless the store moved on
    if results is None:
        results = collect(out, progress)
        sweepdir.write_results(out, results, provenance(out))
    failed = sweepdir.failures(out)
    if failed:
        first = failed[0]
        raise RunsFailed(f"{len(failed)} of {len(runs)} runs failed; the first ({first[0]}): {first[1]} "
                         f"(see: lrsc status {out})")
    return results
