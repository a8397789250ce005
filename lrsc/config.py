"""Sweep configuration: one table of defaults, typed checks, dotted overrides, the grid.

A sweep file is YAML with the sections of :data:`DEFAULTS` plus ``grid``, a mapping from
an axis (``lr``, ``seed`` or any dotted key such as ``model_params.width``) to the list
of values to sweep. Every value is checked against the type of its default before
anything runs, and every error names the key, the bad value and what to do instead.

This module sits below everything it configures: it knows the sections and their types,
not the datasets or models. Each registry checks its own entries (``datasets.check``,
``models.check``), and the sweep calls those checks for every run of the grid.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import json
from pathlib import Path
from typing import Any

import yaml

from lrsc.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "dataset": "parity",        # registry name, see lrsc.datasets.names()
    "dataset_params": {},       # keyword arguments of the dataset builder
    "model": "fcn",             # registry name, see lrsc.models.names()
    "model_params": {},         # keyword arguments of the model builder
    "seed": 0,                  # one seed; dataset, init and data order derive from it
    "train": {
        "lr": 0.1,              # learning rate (the schedule's starting or peak value)
        "batch_size": 100,
        "optimizer": "sgd",     # sgd, adam, adamw or psgd_kron
        "momentum": 0.0,        # SGD's momentum
        "weight_decay": 0.0,    # L2 penalty (decoupled for adamw and psgd_kron)
        "l1": 0.0,              # L1 penalty: l1 * sum |w| over every weight
        "focal_gamma": 0.0,     # focal loss (1 - p)^gamma * CE; 0 is the cross-entropy
        "asam_rho": 0.0,        # ASAM's neighbourhood radius; 0 trains without ASAM
        "schedule": "constant",  # LR schedule: constant, step, cosine or wsd (warmup-stable-decay)
        "schedule_steps": 0,    # cosine and wsd: steps over which the schedule runs (0: max_steps)
        "schedule_factor": 0.1,  # LR multiplier after the step (step) or at the schedule's end (cosine, wsd)
        "schedule_at": 1000,    # step: the step after which the LR is multiplied by schedule_factor
        "warmup_steps": 0,      # wsd: steps of linear warmup
        "decay_frac": 0.2,      # wsd: the share of schedule_steps spent decaying
        "stop_loss": 0.0,       # stop at this mean training cross-entropy instead of at 100% accuracy (0: accuracy)
        "extra_steps": 0,       # steps trained on after the stopping criterion is met
        "max_steps": 15000,     # step cap; a run that hits it is reported as not converged
        "eval_every": 100,      # steps between full training-set accuracy checks
        "collapse_patience": 10,  # evaluations at chance (after having learnt) that count as a collapse
        "record_every": 10,     # steps between the training records (loss, BC loss ratio, norms, ...): every step costs
                                # up to twice the step of a small model
        "confident_prob": 0.9,  # tau: a sample is confidently mispredicted when a wrong class gets more than this
    },
    "metrics": {
        "q": 0.1,               # fraction kept by q-compressibility (SPEC §4; our default)
        "n_act": 1000,          # random test inputs for activation statistics
        "prune_fractions": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "n_attr": 500,          # test inputs for Integrated Gradients
        "ig_steps": 32,         # Riemann steps of Integrated Gradients
        "prune_scope": "layer",  # structured pruning per layer ("layer") or ranked over the whole network ("global")
        "snapshot_steps": [],   # training steps at which per-neuron CSI and BSI are recorded (Fig. 18)
        "bg_mask": "none",      # background masks for bg_share: none, grabcut (OpenCV, central box) or deeplab
        "deeplab_weights": "",  # bg_mask deeplab: a local file with torchvision's deeplabv3_resnet50 state dict
    },
}
PRUNE_SCOPES = ("layer", "global")
OPTIMIZERS = ("sgd", "adam", "adamw", "psgd_kron")
SCHEDULES = ("constant", "step", "cosine", "wsd")
BG_MASKS = ("none", "grabcut", "deeplab")
# Dims the collected results use besides the grid's axes: trace steps, snapshots and per-item axes.
RESERVED_DIMS = ("step", "snapshot", "neuron", "prune_fraction")

# Short names for sweep axes; any other axis is a dotted path into the run config.
AXIS_ALIASES = {key: f"train.{key}" for key in (
    "lr", "batch_size", "optimizer", "momentum", "weight_decay", "l1", "focal_gamma", "asam_rho", "schedule",
    "schedule_at", "stop_loss", "extra_steps")}
POSITIVE = {"train.lr", "train.batch_size", "train.max_steps", "train.eval_every", "train.collapse_patience",
            "train.record_every", "train.confident_prob", "train.schedule_at", "train.decay_frac", "metrics.q",
            "metrics.n_act", "metrics.n_attr", "metrics.ig_steps"}
NON_NEGATIVE = {"train.momentum", "train.weight_decay", "train.l1", "train.focal_gamma", "train.asam_rho",
                "train.schedule_steps", "train.schedule_factor", "train.warmup_steps", "train.stop_loss",
                "train.extra_steps"}
CHOICES = {"train.optimizer": OPTIMIZERS, "train.schedule": SCHEDULES, "metrics.prune_scope": PRUNE_SCOPES,
           "metrics.bg_mask": BG_MASKS}


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(type(v), type(v).__name__)


def check_value(key: str, value: Any, default: Any) -> None:
    """Raise ConfigError unless ``value`` has the type of ``default`` (ints pass as floats)."""
    ok = (
        isinstance(value, bool) if isinstance(default, bool)
        else (isinstance(value, (int, float)) and not isinstance(value, bool)) if isinstance(default, float)
        else (isinstance(value, int) and not isinstance(value, bool)) if isinstance(default, int)
        else isinstance(value, type(default)) if default is not None
        else True
    )
    if not ok:
        raise ConfigError(f"{key} must be {_type_name(default)}, got {value!r} ({type(value).__name__})")


def check_params(where: str, params: dict, spec: dict[str, inspect.Parameter]) -> None:
    """Check builder keyword arguments ``params`` against the builder's signature ``spec``."""
    for key, value in params.items():
        if key not in spec:
            raise ConfigError(f"unknown parameter {key!r} for {where}; valid parameters: {', '.join(spec)}")
        check_value(f"{where} parameter {key}", value, spec[key].default)


def get(cfg: dict, path: str) -> Any:
    node = cfg
    for part in path.split("."):
        node = node[part]
    return node


def set_path(cfg: dict, path: str, value: Any) -> None:
    """Set a dotted key in a nested dict, creating intermediate mappings."""
    *parents, last = path.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {path!r}: {part!r} is not a section")
    node[last] = value


def axis_path(axis: str) -> str:
    return AXIS_ALIASES.get(axis, axis)


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.max_steps=2000"`` -> ``("train.max_steps", 2000)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r} (e.g. --set train.max_steps=2000)")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot read value {raw!r}: {e}") from None


def check_run(run: dict) -> None:
    """Validate one run's sections and values; raises ConfigError naming the first problem.

    The dataset's and model's own parameters are checked by their registries (the sweep
    calls ``datasets.check`` and ``models.check``); here only their names' types.
    """
    for key in run:
        if key not in DEFAULTS:
            raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(list(DEFAULTS) + ['grid'])}")
    for section in ("train", "metrics"):
        for key, value in run[section].items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"unknown key {section}.{key!r}; valid keys: {', '.join(DEFAULTS[section])}")
            check_value(f"{section}.{key}", value, DEFAULTS[section][key])
    for key in ("dataset", "model"):
        check_value(key, run[key], DEFAULTS[key])
    for key in ("dataset_params", "model_params"):
        check_value(key, run[key], DEFAULTS[key])
    check_value("seed", run["seed"], 0)
    for path in POSITIVE:
        if get(run, path) <= 0:
            raise ConfigError(f"{path} must be positive, got {get(run, path)!r}")
    for path in NON_NEGATIVE:
        if get(run, path) < 0:
            raise ConfigError(f"{path} must be non-negative, got {get(run, path)!r}")
    for path, choices in CHOICES.items():
        if get(run, path) not in choices:
            raise ConfigError(f"{path} must be one of {', '.join(choices)}, got {get(run, path)!r}")
    for path in ("metrics.q", "train.confident_prob", "train.decay_frac"):
        if not get(run, path) <= 1:
            raise ConfigError(f"{path} must lie in (0, 1], got {get(run, path)!r}")
    m = run["metrics"]
    if m["bg_mask"] == "deeplab" and not Path(m["deeplab_weights"]).is_file():
        raise ConfigError(f"metrics.bg_mask=deeplab needs torchvision's deeplabv3_resnet50 weights in a local file: "
                          f"metrics.deeplab_weights={m['deeplab_weights']!r} is not one; set it, or use "
                          f"metrics.bg_mask=grabcut")
    t = run["train"]
    if t["momentum"] >= 1:
        raise ConfigError(f"train.momentum must lie in [0, 1), got {t['momentum']!r}")
    if t["optimizer"] != "sgd" and t["momentum"]:
        raise ConfigError(f"train.momentum is SGD's; train.optimizer={t['optimizer']!r} uses its own "
                          f"(set train.momentum to 0)")
    horizon = t["schedule_steps"] or t["max_steps"]
    if t["schedule"] == "wsd" and t["warmup_steps"] + t["decay_frac"] * horizon > horizon:
        raise ConfigError(f"train.warmup_steps={t['warmup_steps']} and train.decay_frac={t['decay_frac']} do not "
                          f"fit in the schedule's {horizon} steps (train.schedule_steps, else train.max_steps)")
    if not all(isinstance(f, (int, float)) and 0 <= f < 1 for f in run["metrics"]["prune_fractions"]):
        raise ConfigError(f"metrics.prune_fractions must be numbers in [0, 1), got {run['metrics']['prune_fractions']!r}")
    snaps = run["metrics"]["snapshot_steps"]
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in snaps) or sorted(set(snaps)) != snaps:
        raise ConfigError(f"metrics.snapshot_steps must be increasing non-negative integers (training steps), "
                          f"got {snaps!r}")


def merge(defaults: dict, given: dict) -> dict:
    """Deep-merge ``given`` over ``defaults`` (sections merge; values replace)."""
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("dataset_params", "model_params"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(source: str | Path | dict, overrides: list[str] | dict | None = None) -> dict:
    """Read a sweep config (a YAML path or a dict), apply overrides, fill defaults, check it.

    ``overrides`` is a list of ``key=value`` strings or a ``{dotted_key: value}`` dict.
    Returns ``{**run_defaults, "grid": {axis: [values]}}`` with every run of the grid checked.
    """
    if isinstance(source, dict):
        given = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"params file {str(path)!r} not found")
        try:
            given = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(given, dict):
        raise ConfigError(f"a sweep config must be a mapping of keys, got {type(given).__name__}")
    pairs = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in pairs:
        set_path(given, key, value)
    grid = given.pop("grid", {}) or {}
    cfg = merge(DEFAULTS, given)
    if not isinstance(grid, dict):
        raise ConfigError(f"grid must map axes to lists of values, got {grid!r}")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis} must be a non-empty list, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"grid.{axis} has repeated values: {values!r}")
    if "train.record_every" in map(axis_path, grid):
        raise ConfigError("train.record_every cannot be a grid axis: every run of a sweep records on one step grid")
    cfg["grid"] = grid
    for run in expand(cfg):  # every run of the grid is checked before anything runs
        check_run(run)
    return cfg


def axes(cfg: dict) -> dict[str, list]:
    """``{dim name: values}`` of the grid; a dotted axis is named by its last component.

    Raises ConfigError when two axes would share a dim name (or take ``step``, the traces'
    dim), or when an axis has values that cannot be coordinates (lists, mappings).
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
    """Every run config of the grid, in row-major grid order (without the ``grid`` key)."""
    axes(cfg)  # refuse a grid whose results could not be collected, before anything runs
    base = {k: v for k, v in cfg.items() if k != "grid"}
    runs = []
    for values in itertools.product(*cfg["grid"].values()):
        run = copy.deepcopy(base)
        for axis, value in zip(cfg["grid"], values):
            set_path(run, axis_path(axis), value)
        runs.append(run)
    return runs


def _non_default(value: Any, default: Any) -> Any:
    """``value`` less the entries of its sections that equal ``default``'s (free-form params kept whole)."""
    return {k: _non_default(v, default[k]) if isinstance(v, dict) and isinstance(default.get(k), dict) and default[k]
            else v for k, v in value.items() if k not in default or v != default[k]}


def run_hash(run: dict) -> str:
    """First 16 hex digits of the SHA-256 of the run's settings that differ from :data:`DEFAULTS`.

    Hashing only what differs from the defaults means a setting added later, at a default
    that keeps the old behaviour, leaves every stored run's hash (and so its file) valid; a
    default whose value changes changes the hash of every run that relied on it.
    """
    return hashlib.sha256(json.dumps(_non_default(run, DEFAULTS), sort_keys=True).encode()).hexdigest()[:16]
