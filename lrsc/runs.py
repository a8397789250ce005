"""A run's data and model, rebuilt from its config: what training, evaluation, soups and chapters share.

``load_data(run)`` builds the run's ``(train, test)`` splits (drawn from ``run["seed"]``),
``init_model(run, train)`` its freshly initialised model, ``load_model(store, run_hash)`` the
trained model from a run store and ``model_at(results, lr=0.1, seed=0)`` a grid point's;
``check_contract(run)`` puts one batch of the run's data through its model before a sweep
trains anything. Built datasets are kept in a small cache bounded by memory
(:data:`CACHE_BYTES`), so the runs of one seed share one copy without a process holding every
dataset it ever built.
"""
from __future__ import annotations

import io
import itertools
import json
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lrsc import datasets, models, sweepdir
from lrsc.errors import ConfigError
from lrsc.models import features_and_logits
from lrsc.registry import fingerprint
from lrsc.seeding import derive_seed, pick_device
from lrsc.store import FINISHED, RunStore

if TYPE_CHECKING:
    import xarray as xr

CACHE_BYTES = 2 * 2**30  # most bytes of built datasets kept per process
_cache: OrderedDict[str, tuple[datasets.Split, datasets.Split]] = OrderedDict()


def _nbytes(split: datasets.Split) -> int:
    return sum(t.numel() * t.element_size() for t in (split.x, split.y, split.b))


def _built(name: str, params: dict, seed: int) -> tuple[datasets.Split, datasets.Split]:
    """``datasets.build(name, seed, **params)`` through the bounded cache (least recently used goes first).
    The key holds the builder's code fingerprint: a dataset registered anew under its name (other
    code, e.g. a notebook cell run again) is built again, never read from the cache."""
    key = json.dumps([name, fingerprint(datasets.REGISTRY.get(name)[0]), params, seed], sort_keys=True)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    pair = datasets.build(name, seed=seed, **params)
    _cache[key] = pair
    while len(_cache) > 1 and sum(_nbytes(a) + _nbytes(b) for a, b in _cache.values()) > CACHE_BYTES:
        _cache.popitem(last=False)
    return pair


def load_data(run: dict, device: str | torch.device = "cpu") -> tuple[datasets.Split, datasets.Split]:
    """The run's ``(train, test)`` splits on ``device``; the dataset is drawn from ``run["seed"]``.

    Off the CPU, a training set of 8-bit images (every input ``k / 255``) goes to the device as
    uint8 levels: a quarter of the device memory (ImageNet at 300 images a class and 128 px: 15
    instead of 59 GB), each minibatch made float32 as training takes it, to the same values
    (:func:`lrsc.datasets.as_inputs`). The test set, which every metric reads, stays float32.
    """
    train_cpu, test_cpu = _built(run["dataset"], run["dataset_params"], run["seed"])
    dev = pick_device(device) if isinstance(device, str) else device
    levels = None if dev.type == "cpu" else datasets.pixel_levels(train_cpu.x)
    train = train_cpu.to(dev) if levels is None else \
        datasets.Split(levels, train_cpu.y, train_cpu.b, train_cpu.num_classes, train_cpu.num_bias,
                       train_cpu.regions).to(dev)
    return train, test_cpu.to(dev)


def _check_split(name: str, part: str, split: datasets.Split, info: datasets.Info) -> None:
    """Refuse a split whose tensors are not what dataset ``name`` declared (see :class:`lrsc.datasets.Split`)."""
    where = f"dataset {name!r}: its {part} split"
    if tuple(split.x.shape[1:]) != tuple(info.input_shape):
        raise ConfigError(f"{where} holds inputs of shape {tuple(split.x.shape[1:])}, but its check declares "
                          f"input_shape {tuple(info.input_shape)}; make the builder and the check agree")
    if split.x.dtype != torch.float32:
        raise ConfigError(f"{where} holds {str(split.x.dtype).removeprefix('torch.')} inputs; inputs must be float32 "
                          f"(e.g. x.float() in the builder)")
    for label, values, k in (("y", split.y, split.num_classes), ("b", split.b, split.num_bias)):
        if values.dtype != torch.int64 or tuple(values.shape) != (len(split.x),):
            raise ConfigError(f"{where}: {label} must be int64 of shape ({len(split.x)},), one label per input, got "
                              f"{str(values.dtype).removeprefix('torch.')} of shape {tuple(values.shape)}")
        if len(values) and not 0 <= int(values.min()) <= int(values.max()) < k:
            raise ConfigError(f"{where}: {label} takes values in [{int(values.min())}, {int(values.max())}], outside "
                              f"[0, {k - 1}] for its {k} declared values (num_classes / num_bias)")
    if split.num_classes != info.num_classes:
        raise ConfigError(f"{where} has num_classes={split.num_classes}, but its check declares "
                          f"num_classes={info.num_classes}; make the builder and the check agree")


def check_contract(run: dict, keep: bool = True) -> None:
    """Before a sweep trains any run like ``run``: build its dataset (through the cache its
    training then reads; ``keep=False`` leaves the cache as it was) and check every split against
    what the dataset's check declared (input shape, float32 inputs, int64 labels within their
    ranges, class count, training-set size), then put two training inputs through a freshly built
    model, as training and every metric use it (:func:`lrsc.models.features_and_logits`). Raises
    ConfigError naming the dataset or the model and what to change."""
    name = run["dataset"]
    info = datasets.check(name, run["dataset_params"])
    train, test = _built(name, run["dataset_params"], run["seed"]) if keep else \
        datasets.build(name, seed=run["seed"], **run["dataset_params"])
    for part, split in (("training", train), ("test", test)):
        _check_split(name, part, split, info)
    if len(train) != info.n_train:
        raise ConfigError(f"dataset {name!r}: its training split holds {len(train)} inputs, but its check declares "
                          f"n_train={info.n_train}; make the builder and the check agree")
    where = f"model {run['model']!r} with model_params {run['model_params']}"
    model = init_model(run, train)
    try:
        with torch.no_grad():
            feats, logits = features_and_logits(model.eval(), train.x[:2], where)
    except ConfigError:
        raise
    except Exception as e:  # the model's code refused real inputs that the meta check let through (e.g. a dtype)
        raise ConfigError(f"{where} fails on two inputs of dataset {name!r}: {type(e).__name__}: "
                          f"{' '.join(str(e).split())}") from None
    if tuple(logits.shape) != (len(train.x[:2]), info.num_classes) or feats.dim() != 2:
        raise ConfigError(f"{where} gives logits of shape {tuple(logits.shape)} and a representation of shape "
                          f"{tuple(feats.shape)} for two inputs of dataset {name!r}; it must give (2, "
                          f"{info.num_classes}) and (2, d)")
    if not (torch.isfinite(logits).all() and torch.isfinite(feats).all()):
        raise ConfigError(f"{where} gives non-finite outputs at initialisation on inputs of dataset {name!r}")


def init_model(run: dict, train_set: datasets.Split) -> nn.Module:
    """The run's freshly initialised model, on ``train_set``'s device; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(run["seed"], "init"))
        model = models.build(run["model"], input_shape=train_set.x.shape[1:], num_classes=train_set.num_classes,
                             **run["model_params"])
    return model.to(train_set.x.device)


def trained_model(run: dict, weights: str | Path | dict, train_set: datasets.Split) -> nn.Module:
    """The run's model with trained ``weights`` (a state dict or a ``.pt`` file), in eval mode."""
    model = init_model(run, train_set)
    state = weights if isinstance(weights, dict) else torch.load(weights, map_location=train_set.x.device,
                                                                 weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def load_model(store_root: str | Path, run_hash: str, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The trained model of run ``run_hash`` in the run store at ``store_root`` (eval mode), and its config.

    Raises ConfigError when the run is not finished there or its files are damaged (the weights'
    bytes are checked against their checksum before they are loaded).
    """
    store = RunStore(store_root)
    state = store.state(run_hash, verify=False)
    if state.status not in FINISHED:
        raise ConfigError(f"run {run_hash} in {store.root} is {state.status}"
                          f"{': ' + state.problem if state.problem else ''}; run its sweep again to train it")
    run = state.record["config"]
    train_set = load_data(run, device)[0]
    weights = torch.load(io.BytesIO(store.read(run_hash, "pt", state.record)), map_location=train_set.x.device,
                         weights_only=True)
    return trained_model(run, weights, train_set), run


def model_at(sweep: "xr.Dataset | str | Path", device: str = "cpu", **point) -> nn.Module:
    """The trained model (eval mode) of one grid point of a sweep, in one call:
    ``model_at(ds, lr=0.1, seed=0)`` for a collected dataset ``ds`` (its ``run`` variable names the
    run, its ``store`` attr the run store), or ``model_at("results/mine/parity", lr=0.1, seed=0)``
    for a sweep folder (its ``grid.json``). ``point`` gives a value for every grid dim; raises
    ConfigError for a missing or unknown dim or value, and as :func:`load_model` does."""
    if isinstance(sweep, (str, Path)):
        grid = sweepdir.read_grid(sweep)
        dims, store = grid["dims"], grid["store"]
        hashes = dict(zip((tuple(p.values()) for p in sweepdir.points(grid)), grid["hashes"]))
        where = str(sweep)
    else:
        if "run" not in sweep:
            raise ConfigError("this dataset holds no run hashes (collected by an older lrsc); run `lrsc collect` on "
                              "its sweep folder, or give model_at the folder")
        dims = {d: [v.item() for v in sweep[d].values] for d in sweep["run"].dims}
        store, where = sweep.attrs["store"], "the dataset"
        hashes = {tuple(dims[d][i] for d, i in zip(dims, pos)): str(sweep["run"].values[pos])
                  for pos in itertools.product(*(range(len(v)) for v in dims.values()))}
    if set(point) != set(dims):
        raise ConfigError(f"model_at: give a value for each grid dim of {where}: {', '.join(dims)} (got "
                          f"{', '.join(point) or 'none'})")
    key = tuple(point[d] for d in dims)
    if key not in hashes:
        bad = next(d for d in dims if point[d] not in dims[d])
        raise ConfigError(f"model_at: {bad}={point[bad]!r} is not in the grid of {where}; its values: "
                          f"{', '.join(map(str, dims[bad]))}")
    return load_model(store, hashes[key], device)[0]
