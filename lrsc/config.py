"""Sweep configuration: defaults, dotted overrides, the grid, normalisation and what a run's hash covers.

A sweep file is YAML with the sections of :data:`DEFAULTS`, an optional ``title`` (how
tables and figures name the sweep), optional ``plugins`` (modules or ``.py`` files that
register its datasets, models and metrics) and ``grid``, a mapping from an axis (``lr``, ``seed``,
any training setting by its name, or any dotted key such as ``dataset_params.rho``) to the
list of values to sweep. The ``train`` and ``metrics`` sections are declared in
:mod:`lrsc.settings`, which checks and normalises them; the dataset's and model's own
parameters are checked by their registries when a sweep is planned (:func:`lrsc.plan.plan`).

A sweep file may not give a key twice (YAML would keep the last silently): :func:`yaml_load`
refuses it. Every base value is checked, even one a grid axis overrides, so a sweep file holds
no invalid value.

This module sits below everything it configures and imports no torch: ``lrsc status``
reads sweeps through it without loading the training stack.
"""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any, Mapping

import yaml

from lrsc import edge
from lrsc.errors import ConfigError
from lrsc.paths import resolve
from lrsc.settings import TRAIN, MetricSettings, TrainSettings

DEFAULTS: dict[str, Any] = {
    "dataset": "parity",        # registry name, see lrsc.datasets.names()
    "dataset_params": {},       # keyword arguments of the dataset builder (its defaults fill the rest)
    "model": "fcn",             # registry name, see lrsc.models.names()
    "model_params": {},         # keyword arguments of the model builder
    "seed": 0,                  # one seed; dataset, init and data order derive from it
    "train": TrainSettings().to_config(),     # see lrsc.settings.TrainSettings
    "metrics": MetricSettings().to_config(),  # see lrsc.settings.MetricSettings
}
SECTIONS = ("train", "metrics", "dataset_params", "model_params")
# Keys of a sweep file that describe the sweep rather than its runs (never part of a run's hash):
# edge, what the LR protocol's probe found (lrsc.edge); resources, what each of its SLURM jobs asks
# for (lrsc.engines.SlurmOptions.for_sweep); plugins, the modules or .py files that register its
# datasets, models and variables (lrsc.extensions.load_plugins).
SWEEP_KEYS = ("grid", "title", "edge", "resources", "plugins")
# Dims the collected results use besides the grid's axes: trace steps, snapshots and per-item axes.
RESERVED_DIMS = ("step", "snapshot", "neuron", "prune_fraction")


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (YAML would keep the last); give each key once",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_load(text: str) -> Any:
    """``text`` read as YAML (safe types only); a key given twice in a mapping raises yaml.YAMLError."""
    return yaml.load(text, Loader=_UniqueKeys)


def get(cfg: dict, path: str) -> Any:
    node = cfg
    for part in path.split("."):
        node = node[part]
    return node


def set_path(cfg: dict, path: str, value: Any) -> None:
    """Set a dotted key in a nested dict, creating intermediate mappings; ``grid.<axis>`` sets one
    axis of the grid, whose name may itself be dotted (``grid.dataset_params.rho``)."""
    if path.startswith("grid."):
        grid = cfg.setdefault("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError(f"cannot set {path!r}: grid is not a mapping of axes")
        grid[path[len("grid."):]] = value
        return
    *parents, last = path.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
        if node is None:
            node = cfg[part] = {}
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {path!r}: {part!r} is not a section")
    node[last] = value


def axis_path(axis: str) -> str:
    """The dotted config key of a grid axis: a training setting's name is short for ``train.<name>``."""
    return f"train.{axis}" if axis in TRAIN else axis


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.max_steps=2000"`` -> ``("train.max_steps", 2000)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r} (e.g. --set train.max_steps=2000)")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot read value {raw!r}: {' '.join(str(e).split())}") from None


def normalise(run: dict) -> dict:
    """One run's config, checked, with its ``train`` and ``metrics`` sections complete and every
    value in the type of its default (``lr: 1`` becomes ``1.0``); raises ConfigError naming the
    first problem. Dataset and model parameters are normalised by their registries."""
    for key in run:
        if key not in DEFAULTS:
            raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join([*DEFAULTS, *SWEEP_KEYS])}")
    out = dict(run)
    out["train"] = TrainSettings.from_config(run["train"]).to_config()
    out["metrics"] = MetricSettings.from_config(run["metrics"]).to_config()
    for key in ("dataset", "model"):
        if not isinstance(run[key], str):
            raise ConfigError(f"{key} must be a registry name (a string), got {run[key]!r}")
    for key in ("dataset_params", "model_params"):
        if not isinstance(run[key], dict):
            raise ConfigError(f"{key} must be a mapping of parameters, got {run[key]!r}")
    if isinstance(run["seed"], bool) or not isinstance(run["seed"], int) or run["seed"] < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {run['seed']!r}")
    return out


def merge(defaults: dict, given: dict) -> dict:
    """Deep-merge ``given`` over ``defaults`` (sections merge; values replace)."""
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("dataset_params", "model_params"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _path(source: str | Path) -> Path:
    """The sweep file ``source`` names: as given, else relative to the project (:func:`lrsc.paths.resolve`)."""
    path = Path(source)
    return resolve(path) if not path.is_file() and not path.is_absolute() else path


def _read(source: str | Path | Mapping) -> dict:
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    path = _path(source)
    if not path.is_file():
        raise ConfigError(f"params file {str(source)!r} not found")
    try:
        given = yaml_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if given is None:
        raise ConfigError(f"params file {str(path)!r} is empty; give at least a dataset, a model and a grid "
                          f"(see params/quick/parity.yaml)")
    return given


def _plugins(value: Any, folder: Path) -> list[str]:
    """A sweep's ``plugins`` checked: module names as given, ``.py`` files as absolute paths (a
    relative one is relative to ``folder``, the sweep file's), so the saved ``sweep.yaml`` finds them."""
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ConfigError(f"plugins must be a list of module names or .py files, got {value!r}")
    return [str((folder / p).resolve()) if p.endswith(".py") else p for p in value]


def add_plugins(given: dict, plugins: list[str]) -> dict:
    """``given`` (a config as :func:`read` returns it) with ``plugins`` added to its own, each once;
    a ``.py`` path is relative to the current folder (as on the command line)."""
    known = given.get("plugins", [])
    return {**given, "plugins": known + [p for p in _plugins(list(plugins), Path.cwd()) if p not in known]}


def read(source: str | Path | Mapping, overrides: list[str] | Mapping | None = None) -> dict:
    """A sweep config as given (a YAML path or a mapping) with ``overrides`` applied and its
    structure checked, defaults not filled in: what a user asked for, as :func:`load` reads it.

    ``overrides`` is a list of ``key=value`` strings or a ``{dotted_key: value}`` mapping.
    Returns the given sections, ``grid`` (``{}`` when none) and ``title`` (``""`` when none), and
    ``plugins`` where given (``.py`` paths made absolute, from the sweep file's folder).
    """
    given = _read(source)
    if not isinstance(given, dict):
        raise ConfigError(f"a sweep config must be a mapping of keys, got {type(given).__name__}")
    pairs = overrides.items() if isinstance(overrides, Mapping) else [parse_override(o) for o in overrides or []]
    for key, value in pairs:
        set_path(given, key, value)
    if "plugins" in given:
        folder = Path.cwd() if isinstance(source, Mapping) else _path(source).parent
        given["plugins"] = _plugins(given["plugins"], folder)
    given["grid"] = given.get("grid") or {}
    given["title"] = given.get("title") or ""
    for section in SECTIONS:  # an empty section (`metrics:` with nothing under it) means its defaults
        if section in given and given[section] is None:
            given[section] = {}
        if section in given and not isinstance(given[section], dict):
            raise ConfigError(f"{section} must be a mapping of settings, got {given[section]!r}")
    grid, title = given["grid"], given["title"]
    if not isinstance(grid, dict):
        raise ConfigError(f"grid must map axes to lists of values, got {grid!r}")
    if not isinstance(title, str):
        raise ConfigError(f"title must be a string (how tables and figures name the sweep), got {title!r}")
    probing = edge.spec_of({"grid": grid})  # an LR axis to the edge of stability: checked at its first probe
    for axis, values in grid.items():
        if axis == "lr" and probing:
            continue
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis} must be a non-empty list, got {values!r}")
    if "train.record_every" in map(axis_path, grid):
        raise ConfigError("train.record_every cannot be a grid axis: every run of a sweep records on one step grid")
    return given


def load(source: str | Path | Mapping, overrides: list[str] | Mapping | None = None) -> dict:
    """Read a sweep config (see :func:`read`), fill defaults, check it.

    Returns ``{**run_defaults, "grid": {axis: [values]}, "title": str}`` (and the sweep's other
    keys, :data:`SWEEP_KEYS`, as given) with its base values and every run of the grid checked by
    :func:`normalise` (a base value a grid axis overrides is checked too: the sweep file keeps
    it). An LR axis to the edge of stability (:mod:`lrsc.edge`) is checked at its first probe.
    """
    given = read(source, overrides)
    cfg = merge(DEFAULTS, {k: v for k, v in given.items() if k not in SWEEP_KEYS})
    cfg.update({k: given[k] for k in SWEEP_KEYS if k in given})
    normalise(base(cfg))
    probing = edge.spec_of(cfg)
    checked = {**cfg, "grid": {**cfg["grid"], "lr": [probing.start]}} if probing else cfg
    for run in expand(checked):  # every run of the grid is checked before anything runs
        normalise(run)
    return cfg


def base(cfg: dict) -> dict:
    """The sweep config ``cfg`` without its sweep keys: its settings before any grid axis is applied."""
    return {k: copy.deepcopy(v) for k, v in cfg.items() if k not in SWEEP_KEYS}


def restrict(full: dict, given: dict) -> dict:
    """``full``'s values at the keys ``given`` holds (sections key by key), in ``given``'s order:
    a resolved config cut back to what was given, each value normalised."""
    return {k: restrict(full[k], v) if isinstance(v, dict) and isinstance(full.get(k), dict) and k != "grid"
            else copy.deepcopy(full.get(k, v)) for k, v in given.items()}


def axes(cfg: dict) -> dict[str, list]:
    """``{dim name: values}`` of the grid; a dotted axis is named by its last component.

    Raises ConfigError when two axes would share a dim name (or take a reserved one such as
    ``step``), or when an axis has values that cannot be coordinates (lists, mappings).
    """
    dims: dict[str, list] = {}
    for axis, values in cfg["grid"].items():
        dim = axis.split(".")[-1]
        if dim in dims or dim in RESERVED_DIMS:
            raise ConfigError(f"grid.{axis} would be a second dim named {dim!r}; sweep one of them only")
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ConfigError(f"grid.{axis} values must be numbers, strings or booleans, got {values!r}")
        dims[dim] = values
    return dims


def expand(cfg: dict) -> list[dict]:
    """Every run config of the grid, in row-major grid order (without the sweep's own keys)."""
    axes(cfg)  # refuse a grid whose results could not be collected, before anything runs
    runs = []
    for values in itertools.product(*cfg["grid"].values()):
        run = base(cfg)
        for axis, value in zip(cfg["grid"], values):
            set_path(run, axis_path(axis), value)
        runs.append(run)
    return runs


def _non_default(value: dict, default: dict) -> dict:
    """``value`` less the entries that equal ``default``'s, section by section."""
    return {k: _non_default(v, default[k]) if isinstance(v, dict) and isinstance(default.get(k), dict) else v
            for k, v in value.items() if k not in default or v != default[k]}


def hashed(run: dict, param_defaults: Mapping[str, dict] | None = None) -> dict:
    """The settings of a run its hash covers (:func:`lrsc.store.name_of` of them is its hash): those
    that differ from the defaults, section by section.

    ``run`` is normalised (see :func:`normalise`); ``param_defaults`` gives the defaults of its
    ``dataset_params`` and ``model_params`` (the builders' signatures), so that a parameter
    given at its default value and one left out are the same run. Hashing only what differs
    keeps every stored run's hash when a setting is added; the hash alone does not say which
    defaults a run was trained under, so a stored run is reused only when its recorded full
    config is the planned one (see :mod:`lrsc.identity`).
    """
    return _non_default(run, {**DEFAULTS, **(param_defaults or {})})


def grid_points(cfg: dict) -> list[dict]:
    """``{dim: value}`` of every run of the grid, in the order of :func:`expand`."""
    dims = axes(cfg)
    return [dict(zip(dims, values)) for values in itertools.product(*dims.values())]
