"""Sweeps: a grid of runs, each keyed by the hash of its full config (as in DomainBed).

``run_sweep(config, out_dir)`` trains every run of the grid that has no result file
yet, writes each result atomically to ``out_dir/runs/<hash>.nc`` with a status file
beside it, and collects the grid into ``out_dir/results.nc``. Interrupt it and run it
again: finished runs are skipped. The work units (see :func:`batches`) run through an
executor from :mod:`lrsc.engines`: this process, local worker processes, Dask or SLURM.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import socket
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml
from torch import nn
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

import lrsc
from lrsc import config as config_mod
from lrsc import datasets, engines, metrics, models, store
from lrsc.attribution import integrated_gradients, region_shares
from lrsc.errors import ConfigError
from lrsc.seeding import derive_seed, generator, pick_device
from lrsc.train import TrainResult, finite_params, train, train_batched

BATCHABLE_MODELS = ("fcn", "cnn")  # buffer-free (no BatchNorm), so train_batched can stack them
MODELS_AT_ONCE = 32  # most runs trained together: bounds the memory of stacked weights and data


def axes(cfg: dict) -> dict[str, list]:
    """``{dim name: values}`` of the grid; a dotted axis is named by its last component.

    Raises ConfigError when two axes would share a dim name (or take ``step``, the traces'
    dim), or when an axis has values that cannot be coordinates (lists, mappings).
    """
    dims: dict[str, list] = {}
    for axis, values in cfg["grid"].items():
        dim = axis.split(".")[-1]
        if dim in dims or dim == "step":
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
            config_mod.set_path(run, config_mod.axis_path(axis), value)
        runs.append(run)
    return runs


def run_hash(run: dict) -> str:
    """First 16 hex digits of the SHA-256 of the run's canonical JSON."""
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _dataset(name: str, params_json: str, seed: int) -> tuple[datasets.Split, datasets.Split]:
    return datasets.build(name, seed=seed, **json.loads(params_json))


def load_data(run: dict, dev: torch.device) -> tuple[datasets.Split, datasets.Split]:
    """The run's ``(train, test)`` splits on ``dev``; the dataset is drawn from ``run["seed"]``."""
    train_cpu, test_cpu = _dataset(run["dataset"], json.dumps(run["dataset_params"], sort_keys=True), run["seed"])
    if run["train"]["batch_size"] > len(train_cpu):
        raise ConfigError(f"train.batch_size={run['train']['batch_size']} exceeds the {len(train_cpu)} training samples")
    return train_cpu.to(dev), test_cpu.to(dev)


def init_model(run: dict, train_set: datasets.Split) -> nn.Module:
    """The run's freshly initialised model, on ``train_set``'s device; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(run["seed"], "init"))
        model = models.build(run["model"], input_shape=train_set.x.shape[1:], num_classes=train_set.num_classes,
                             **run["model_params"])
    return model.to(train_set.x.device)


def evaluate(run: dict, model: nn.Module, result: TrainResult, test_set: datasets.Split,
             train_time_s: float) -> xr.Dataset:
    """The run's results as a dataset: the metrics of the trained ``model`` on ``test_set``
    (NaN for a model with non-finite weights), the training outcome and its traces."""
    started = time.time()
    seed, mcfg, dev = run["seed"], run["metrics"], test_set.x.device
    finite = finite_params(model)
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
                                   "wall_time_s": train_time_s + time.time() - started})


def run_one(run: dict, device: str = "auto", progress: bool = False) -> xr.Dataset:
    """Train and evaluate one run; returns its results as a dataset (scalars and traces).

    Deterministic on the CPU: the dataset, the initialisation, the data order and the
    evaluation subsets each come from their own stream derived from ``run["seed"]``.
    """
    train_set, test_set = load_data(run, pick_device(device))
    model = init_model(run, train_set)
    started = time.time()
    result = train(model, train_set, seed=run["seed"], progress=progress, **run["train"])
    return evaluate(run, model, result, test_set, time.time() - started)


def run_batch(runs: list[dict], device: str = "auto", progress: bool = False) -> list[xr.Dataset]:
    """Train runs that differ only in ``train.lr`` and ``seed`` at once (``train_batched``),
    then evaluate each; returns what ``run_one`` would return for each, to float rounding.

    Each run's ``wall_time_s`` is its share of the batch's training time plus its own evaluation.
    """
    dev = pick_device(device)
    splits = {}  # one copy per dataset seed: runs of one seed share their training set
    for run in runs:
        if run["seed"] not in splits:
            splits[run["seed"]] = load_data(run, dev)
    train_sets = [splits[run["seed"]][0] for run in runs]
    nets = [init_model(run, data) for run, data in zip(runs, train_sets)]
    tcfg = {k: v for k, v in runs[0]["train"].items() if k not in ("lr", "momentum", "weight_decay")}
    started = time.time()
    results = train_batched(nets, train_sets, lr=[r["train"]["lr"] for r in runs], seed=[r["seed"] for r in runs],
                            progress=progress, **tcfg)
    share = (time.time() - started) / len(runs)
    return [evaluate(run, net, result, splits[run["seed"]][1], share) for run, net, result in zip(runs, nets, results)]


def batches(runs: list[dict], size: int) -> list[list[dict]]:
    """Split ``runs`` into lists that ``run_batch`` can train at once, of at most ``size`` runs.

    Runs go together when their configs differ only in ``train.lr`` and ``seed``, their model
    is buffer-free (``fcn``, ``cnn``) and they use plain SGD; every other run is a list of one.
    Lists follow the order of each list's first run.
    """
    groups: dict[str, list[dict]] = {}
    for i, run in enumerate(runs):
        plain_sgd = run["train"]["momentum"] == 0 and run["train"]["weight_decay"] == 0
        if size > 1 and run["model"] in BATCHABLE_MODELS and plain_sgd:
            key = json.dumps({**run, "seed": None, "train": {**run["train"], "lr": None}}, sort_keys=True)
        else:
            key = str(i)
        groups.setdefault(key, []).append(run)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


def _record(out: Path, run: dict, status: str, started: float, **extra) -> dict:
    """Write and return a run's status record: ``status``, where it ran and when (Unix seconds)."""
    record = {"status": status, "host": socket.gethostname(), "pid": os.getpid(), "started": started, **extra}
    if status != "running":
        record["finished"] = time.time()
    store.write_status(out, run_hash(run), record)
    return record


def execute(batch: list[dict], out_dir: str | Path, device: str = "auto") -> list[dict]:
    """Train one work unit (a list from :func:`batches`), store each run's result and status.

    Returns each run's status record (``done``, ``diverged`` or ``failed``). A pure function
    of its arguments, so any worker can run it, and run it again. A run that raises is
    recorded as failed with its traceback; when a batch raises, its runs are run one at a
    time, so that one bad run does not fail the others.
    """
    out, started = Path(out_dir), time.time()
    for run in batch:
        _record(out, run, "running", started)
    try:
        results = run_batch(batch, device) if len(batch) > 1 else [run_one(batch[0], device)]
    except Exception:
        if len(batch) > 1:
            return [record for run in batch for record in execute([run], out, device)]
        return [_record(out, batch[0], "failed", started, error=traceback.format_exc())]
    records = []
    for run, ds in zip(batch, results):
        store.write_atomic(ds, store.run_path(out, run_hash(run)))
        records.append(_record(out, run, "diverged" if bool(ds["diverged"]) else "done", started))
    return records


def _drive(executor: engines.Engine, units: list[list[dict]], out: Path, device: str, retries: int,
           bar: tqdm) -> None:
    """Run every unit on ``executor``, resubmitting a unit whose worker was lost up to ``retries`` times.

    Any other error that escapes :func:`execute` (it records the runs' own errors) marks the
    unit's runs failed, and the sweep goes on.
    """
    counts = dict.fromkeys(("done", "failed", "diverged"), 0)
    lost = {i: 0 for i in range(len(units))}
    queue, running = deque(range(len(units))), {}
    while queue or running:
        room = len(queue) if executor.in_flight is None else min(len(queue), executor.in_flight - len(running))
        picked = [queue.popleft() for _ in range(room)]
        if picked:
            running.update(zip(executor.submit_all(execute, [(units[i], str(out), device) for i in picked]), picked))
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            i = running.pop(future)
            try:
                records = future.result()
            except executor.lost_errors:
                lost[i] += 1
                if lost[i] <= retries:
                    queue.append(i)
                    continue
                records = _unit_failed(out, units[i], f"worker lost {lost[i]} times; last error:\n")
            except Exception:
                records = _unit_failed(out, units[i], "")
            for record in records:
                counts[record["status"]] += 1
            bar.set_postfix(counts)
            bar.update(len(records))


def _unit_failed(out: Path, unit: list[dict], note: str) -> list[dict]:
    """Record every run of ``unit`` failed with the exception being handled (``note`` first)."""
    error = note + traceback.format_exc()
    return [_record(out, run, "failed", time.time(), error=error) for run in unit]


def run_sweep(cfg: dict | str | Path, out_dir: str | Path, overrides: list[str] | dict | None = None,
              device: str = "auto", progress: bool = True, models_at_once: int = MODELS_AT_ONCE,
              engine: str = "local", workers: int = 1, retries: int = 2, scheduler: str | None = None,
              slurm: engines.SlurmOptions | None = None) -> xr.Dataset:
    """Run (or resume) a sweep and return the collected dataset, also saved as ``out_dir/results.nc``.

    ``cfg`` is a sweep config dict or YAML path, checked in full before anything is written.
    Runs that differ only in LR and seed are trained up to ``models_at_once`` at a time
    (see :func:`batches`); ``models_at_once=1`` trains every run alone. Either way gives the
    same results to float rounding, and each run's file is written as soon as its batch ends.

    Units run on ``engine`` (``local``, ``dask``, ``slurm``; see :func:`lrsc.engines.make_executor`)
    with ``workers`` processes; a unit whose worker is lost is retried up to ``retries`` times.
    A run that raises is recorded as failed (see ``lrsc status``); it is NaN in the dataset,
    which then has a ``status`` variable, and the next ``run_sweep`` tries it again.
    """
    cfg = config_mod.load(cfg, overrides)
    engines.check_options(engine, workers, scheduler)
    if retries < 0:
        raise ConfigError(f"--retries must be at least 0, got {retries}")
    out = Path(out_dir)
    runs = expand(cfg)
    todo = [r for r in runs if not store.run_path(out, run_hash(r)).exists()]
    # the engine starts (and may fail on bad options) before anything is written; none is needed when all is done
    with (engines.make_executor(engine, workers, device=device, scheduler=scheduler, slurm=slurm,
                                folder=out / "slurm") if todo else nullcontext()) as executor:
        store.write_text_atomic(yaml.safe_dump(cfg, sort_keys=False), out / "sweep.yaml")
        with tqdm(total=len(runs), initial=len(runs) - len(todo), desc=f"sweep {out.name}", unit="run",
                  disable=not progress) as bar:
            if todo:
                _drive(executor, batches(todo, models_at_once), out, device, retries, bar)
    results = collect(out, cfg)
    store.write_atomic(results, out / "results.nc")
    return results


def read_config(out_dir: str | Path) -> dict:
    """The config a sweep stored in ``out_dir/sweep.yaml``."""
    path = Path(out_dir) / "sweep.yaml"
    if not path.is_file():
        raise ConfigError(f"no sweep.yaml in {str(out_dir)!r}; give the --out folder of an lrsc sweep")
    return yaml.safe_load(path.read_text())


def statuses(out_dir: str | Path, cfg: dict | None = None) -> list[tuple[dict, dict]]:
    """``(run, status record)`` of every run of the sweep in ``out_dir``, in grid order."""
    cfg = cfg or read_config(out_dir)
    return [(run, store.read_status(out_dir, run_hash(run))) for run in expand(cfg)]


def collect(out_dir: str | Path, cfg: dict | None = None) -> xr.Dataset:
    """The sweep's dataset from the run files in ``out_dir`` (``cfg``: default ``out_dir/sweep.yaml``).

    Runs without a result are NaN, and a ``status`` variable says why (see ``store.collect``).
    """
    cfg = cfg or read_config(out_dir)
    dims = axes(cfg)
    grid_points = [dict(zip(dims, vals)) for vals in itertools.product(*dims.values())]
    cells = [(point, store.run_path(out_dir, run_hash(run)), record["status"])
             for point, (run, record) in zip(grid_points, statuses(out_dir, cfg))]
    return store.collect(cells, dims, cfg)
