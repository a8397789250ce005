"""Sweeps: a grid of runs, each keyed by the hash of its full config (as in DomainBed).

``run_sweep(config, out_dir)`` trains every run of the grid that has no result file
yet, writes each result atomically to ``out_dir/runs/<hash>.nc``, and collects the grid
into ``out_dir/results.nc``. Interrupt it and run it again: finished runs are skipped.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml
from tqdm.auto import tqdm

import lrsc
from lrsc import config as config_mod
from lrsc import datasets, metrics, models, store
from lrsc.attribution import integrated_gradients, region_shares
from lrsc.errors import ConfigError
from lrsc.seeding import derive_seed, generator, pick_device
from lrsc.train import train


def axes(cfg: dict) -> dict[str, list]:
    """``{dim name: values}`` of the grid; a dotted axis is named by its last component."""
    return {axis.split(".")[-1]: values for axis, values in cfg["grid"].items()}


def expand(cfg: dict) -> list[dict]:
    """Every run config of the grid, in row-major grid order (without the ``grid`` key)."""
    base = {k: v for k, v in cfg.items() if k != "grid"}
    runs = []
    for values in itertools.product(*cfg["grid"].values()):
        run = copy.deepcopy(base)
        for axis, value in zip(cfg["grid"], values):
            config_mod.set_path(run, config_mod.axis_path(axis), value)
        runs.append(run)
    return runs


def run_hash(run: dict) -> str:
    """First 16 hex digits of the SHA-256 of the run's canonical JSON."""
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _dataset(name: str, params_json: str, seed: int) -> tuple[datasets.Split, datasets.Split]:
    return datasets.build(name, seed=seed, **json.loads(params_json))


def run_one(run: dict, device: str = "auto", progress: bool = False) -> xr.Dataset:
    """Train and evaluate one run; returns its results as a dataset (scalars and traces).

    Deterministic on the CPU: the dataset, the initialisation, the data order and the
    evaluation subsets each come from their own stream derived from ``run["seed"]``.
    """
    dev = pick_device(device)
    seed = run["seed"]
    train_cpu, test_cpu = _dataset(run["dataset"], json.dumps(run["dataset_params"], sort_keys=True), seed)
    tcfg, mcfg = run["train"], run["metrics"]
    if tcfg["batch_size"] > len(train_cpu):
        raise ConfigError(f"train.batch_size={tcfg['batch_size']} exceeds the {len(train_cpu)} training samples")
    train_set, test_set = train_cpu.to(dev), test_cpu.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        model = models.build(run["model"], input_shape=train_set.x.shape[1:], num_classes=train_set.num_classes,
                             **run["model_params"])
    model.to(dev)
    started = time.time()
    result = train(model, train_set, seed=seed, progress=progress, **tcfg)

    finite = all(torch.isfinite(p).all() for p in model.parameters())
    nan = float("nan")
    values = dict.fromkeys(("test_acc", "worst_group_acc", "prunability", "act_comp", "act_sparsity",
                            "act_pq_index", "attr_core", "attr_spurious", "attr_noise"), nan)
    if finite:
        feats, logits = models.predict(model, test_set.x)
        values["test_acc"] = metrics.accuracy(logits, test_set.y)
        values["worst_group_acc"] = metrics.worst_group_accuracy(logits, test_set.y, test_set.group)
        values["prunability"] = metrics.prunability(model, test_set.x, test_set.y, mcfg["prune_fractions"])[0]
        pick = torch.randperm(len(test_set), generator=generator(seed, "act_inputs"))[: mcfg["n_act"]].to(dev)
        h = feats[pick]
        values["act_comp"] = torch.nanmean(metrics.q_compressibility(h, mcfg["q"])).item()
        values["act_sparsity"] = metrics.sparsity(h).mean().item()
        values["act_pq_index"] = torch.nanmean(metrics.pq_index(h)).item()
        if test_set.regions:
            pick = torch.randperm(len(test_set), generator=generator(seed, "attr_inputs"))[: mcfg["n_attr"]].to(dev)
            attr = integrated_gradients(model, test_set.x[pick], test_set.y[pick], n_steps=mcfg["ig_steps"])
            for region, share in region_shares(attr, test_set.regions).items():
                values[f"attr_{region}"] = share
    ratio = result.bc_loss_ratio
    values.update(
        max_bc_loss_ratio=ratio.max().item() if len(ratio) else nan,
        train_acc=result.train_acc, steps=result.steps, converged=result.converged,
        diverged=result.diverged, reason=result.reason,
    )
    data = {k: ((), np.asarray(v)) for k, v in values.items()}
    data["loss"] = (("step",), result.loss.numpy())
    data["bc_loss_ratio"] = (("step",), ratio.numpy())
    return xr.Dataset(data, attrs={"config": json.dumps(run, sort_keys=True), "hash": run_hash(run),
                                   "lrsc_version": lrsc.__version__, "device": str(dev),
                                   "wall_time_s": time.time() - started})


def run_sweep(cfg: dict | str | Path, out_dir: str | Path, overrides: list[str] | dict | None = None,
              device: str = "auto", progress: bool = True) -> xr.Dataset:
    """Run (or resume) a sweep and return the collected dataset, also saved as ``out_dir/results.nc``.

    ``cfg`` is a sweep config dict or YAML path, checked in full before anything is written.
    """
    cfg = config_mod.load(cfg, overrides)
    out = Path(out_dir)
    runs = expand(cfg)
    paths = [store.run_path(out, run_hash(r)) for r in runs]
    todo = [(r, p) for r, p in zip(runs, paths) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    counts = {"done": len(runs) - len(todo), "diverged": 0}
    bar = tqdm(total=len(runs), initial=counts["done"], desc=f"sweep {out.name}", unit="run", disable=not progress)
    for run, path in todo:
        bar.set_description(f"{run['dataset']} lr={run['train']['lr']:g} seed={run['seed']}")
        ds = run_one(run, device)
        store.write_atomic(ds, path)
        counts["done"] += 1
        counts["diverged"] += bool(ds["diverged"])
        bar.set_postfix(counts)
        bar.update()
    bar.close()
    dims = axes(cfg)
    grid_points = [dict(zip(dims, vals)) for vals in itertools.product(*dims.values())]
    results = store.collect(zip(grid_points, paths), dims, cfg)
    store.write_atomic(results, out / "results.nc")
    return results
