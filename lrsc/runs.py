"""A run's data and model, rebuilt from its config: what training, evaluation, soups and chapters share.

``load_data(run)`` builds the run's ``(train, test)`` splits (drawn from ``run["seed"]``),
``init_model(run, train)`` its freshly initialised model, and ``load_model(store, run_hash)``
the trained model from a run store. Built datasets are kept in a small cache bounded by
memory (:data:`CACHE_BYTES`), so the runs of one seed share one copy without a process
holding every dataset it ever built.
"""
from __future__ import annotations

import io
import json
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from lrsc import datasets, models
from lrsc.errors import ConfigError
from lrsc.seeding import derive_seed, pick_device
from lrsc.store import FINISHED, RunStore

CACHE_BYTES = 2 * 2**30  # most bytes of built datasets kept per process
_cache: OrderedDict[str, tuple[datasets.Split, datasets.Split]] = OrderedDict()


def _nbytes(split: datasets.Split) -> int:
    return sum(t.numel() * t.element_size() for t in (split.x, split.y, split.b))


def _built(name: str, params: dict, seed: int) -> tuple[datasets.Split, datasets.Split]:
    """``datasets.build(name, seed, **params)`` through the bounded cache (least recently used goes first)."""
    key = json.dumps([name, params, seed], sort_keys=True)
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
