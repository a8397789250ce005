"""Sweeps: a grid of runs, each keyed by the hash of its full config (as in DomainBed).

``run_sweep(config, out_dir)`` trains every run of the grid that has no result file
yet, writes each result atomically to ``out_dir/runs/<hash>.nc`` with a status file
beside it, and collects the grid into ``out_dir/results.nc``. Interrupt it and run it
again: finished runs are skipped. The work units (see :func:`batches`) run through an
executor from :mod:`lrsc.engines`: this process, local worker processes, Dask or SLURM.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import socket
import sys
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
from lrsc.config import axes, expand, run_hash
from lrsc import config as config_mod
from lrsc import datasets, engines, models, store, variables
from lrsc.errors import ConfigError, RunsFailed
from lrsc.seeding import derive_seed, pick_device
from lrsc.train import PER_MODEL, TrainResult, stacked_kernel, train, train_batched

MODELS_AT_ONCE = 32  # most runs trained together: bounds the memory of stacked weights and data


def plan(cfg: dict | str | Path, overrides: list[str] | dict | None = None) -> tuple[dict, list[dict]]:
    """Load a sweep config and check every run of its grid before anything runs.

    Returns ``(cfg, runs)``. Beyond :func:`lrsc.config.load`'s checks of each run's sections,
    each run's dataset and model are checked by their registries (ranges, sizes against the
    source data, the data root and its layout, the model taking the dataset's inputs) and its
    training settings against the dataset (the batch size against the training-set size).
    Raises ConfigError naming the first problem.
    """
    cfg = config_mod.load(cfg, overrides)
    runs = expand(cfg)
    seen: dict[str, datasets.Info] = {}
    for run in runs:
        key = json.dumps([run["dataset"], run["dataset_params"]], sort_keys=True)
        if key not in seen:
            seen[key] = datasets.check(run["dataset"], run["dataset_params"])
        info = seen[key]
        model_key = json.dumps([run["model"], run["model_params"], key], sort_keys=True)
        if model_key not in seen:
            models.check(run["model"], info.input_shape, info.num_classes, run["model_params"])
            seen[model_key] = info
        if run["train"]["batch_size"] > info.n_train:
            raise ConfigError(f"train.batch_size={run['train']['batch_size']} exceeds the {info.n_train} training "
                              f"samples of {run['dataset']}; use a batch size of at most {info.n_train}")
    return cfg, runs


@lru_cache(maxsize=8)
def _dataset(name: str, params_json: str, seed: int) -> tuple[datasets.Split, datasets.Split]:
    return datasets.build(name, seed=seed, **json.loads(params_json))


def load_data(run: dict, dev: torch.device) -> tuple[datasets.Split, datasets.Split]:
    """The run's ``(train, test)`` splits on ``dev``; the dataset is drawn from ``run["seed"]``."""
    train_cpu, test_cpu = _dataset(run["dataset"], json.dumps(run["dataset_params"], sort_keys=True), run["seed"])
    return train_cpu.to(dev), test_cpu.to(dev)


def init_model(run: dict, train_set: datasets.Split) -> nn.Module:
    """The run's freshly initialised model, on ``train_set``'s device; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(run["seed"], "init"))
        model = models.build(run["model"], input_shape=train_set.x.shape[1:], num_classes=train_set.num_classes,
                             **run["model_params"])
    return model.to(train_set.x.device)


@lru_cache(maxsize=64)
def _stackable(key: str) -> bool:
    run = json.loads(key)
    info = datasets.check(run["dataset"], run["dataset_params"])
    with torch.device("meta"):
        model = models.build(run["model"], input_shape=info.input_shape, num_classes=info.num_classes,
                             **run["model_params"])
    return stacked_kernel(model, run["train"]["optimizer"], run["train"]["asam_rho"])


def stackable(run: dict) -> bool:
    """Whether the run's model trains through the stacked kernel (see ``lrsc.train.stacked_kernel``),
    so that it can share a batch with runs that differ from it only in seed and the per-model
    training settings (``lrsc.train.PER_MODEL``: LR, momentum, penalties, focal gamma, schedule,
    stopping)."""
    keys = ("dataset", "dataset_params", "model", "model_params", "train")
    return _stackable(json.dumps({k: run[k] for k in keys}, sort_keys=True))


def _train_settings(run: dict) -> dict:
    """The run's ``train`` settings as keyword arguments of ``lrsc.train``, less the LR."""
    return {k: v for k, v in run["train"].items() if k != "lr"}


def _plain_sgd(run: dict) -> bool:
    """Whether the run is plain SGD (no momentum, weight decay or L1): such runs share a batch only
    with each other, since the kernel's update takes another route for them (``lrsc.train._Sgd``)."""
    return not (run["train"]["momentum"] or run["train"]["weight_decay"] or run["train"]["l1"])


def _result(run: dict, model: nn.Module, result: TrainResult, test_set: datasets.Split,
            train_time_s: float) -> tuple[xr.Dataset, dict]:
    """The run's stored form: its variables (``lrsc.variables``) as a dataset, and its final weights."""
    started = time.time()
    values = variables.evaluate(run, model, test_set, result)
    ds = xr.Dataset({name: (variables.BY_NAME[name].dims, value) for name, value in values.items()},
                    attrs={"config": json.dumps(run, sort_keys=True), "hash": run_hash(run),
                           "lrsc_version": lrsc.__version__, "device": str(test_set.x.device),
                           "threads": torch.get_num_threads(),
                           "training_path": "stacked kernel" if stacked_kernel(model, run["train"]["optimizer"],
                                                                               run["train"]["asam_rho"])
                           else "one model, autograd",
                           "wall_time_s": train_time_s + time.time() - started})
    return ds, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def run_one(run: dict, device: str = "auto", progress: bool = False) -> tuple[xr.Dataset, dict]:
    """Train and evaluate one run; returns its results as a dataset (scalars and traces) and
    its trained weights (a state dict on the CPU).

    Deterministic on the CPU: the dataset, the initialisation, the data order and the
    evaluation subsets each come from their own stream derived from ``run["seed"]``.
    """
    train_set, test_set = load_data(run, pick_device(device))
    model = init_model(run, train_set)
    started = time.time()
    result = train(model, train_set, lr=run["train"]["lr"], seed=run["seed"], progress=progress,
                   snapshot=variables.neuron_selectivity(run, test_set), snapshot_steps=run["metrics"]["snapshot_steps"],
                   **_train_settings(run))
    return _result(run, model, result, test_set, time.time() - started)


def run_batch(runs: list[dict], device: str = "auto", progress: bool = False) -> list[tuple[xr.Dataset, dict]]:
    """Train runs that differ only in ``seed`` and per-model training settings and go through the
    stacked kernel at once (``train_batched``), then evaluate each; returns exactly what ``run_one`` returns
    for each (the kernel's per-model numbers do not depend on the batch).

    Each run's ``wall_time_s`` is its share of the batch's training time plus its own evaluation.
    """
    dev = pick_device(device)
    splits = {}  # one copy per dataset seed: runs of one seed share their training set
    for run in runs:
        if run["seed"] not in splits:
            splits[run["seed"]] = load_data(run, dev)
    train_sets = [splits[run["seed"]][0] for run in runs]
    nets = [init_model(run, data) for run, data in zip(runs, train_sets)]
    started = time.time()
    # optimizer and asam_rho are SGD and 0 (or the runs would not be stackable): train_batched's own
    shared = {k: v for k, v in _train_settings(runs[0]).items() if k not in (*PER_MODEL, "optimizer", "asam_rho")}
    per_model = {k: [r["train"][k] for r in runs] for k in PER_MODEL}
    results = train_batched(nets, train_sets, seed=[r["seed"] for r in runs], progress=progress,
                            snapshot_steps=runs[0]["metrics"]["snapshot_steps"],
                            snapshot=[variables.neuron_selectivity(r, splits[r["seed"]][1]) for r in runs],
                            **per_model, **shared)
    share = (time.time() - started) / len(runs)
    return [_result(run, net, result, splits[run["seed"]][1], share) for run, net, result in zip(runs, nets, results)]


def batches(runs: list[dict], size: int) -> list[list[dict]]:
    """Split ``runs`` into lists that ``run_batch`` can train at once, of at most ``size`` runs.

    Runs go together when their configs differ only in ``seed`` and the per-model training
    settings (``lrsc.train.PER_MODEL``), they train through the stacked kernel (:func:`stackable`)
    and they are all plain SGD or all not (:func:`_plain_sgd`); every other run is a list of one,
    and the sweep says once which settings keep runs apart. Lists follow the order of each list's
    first run.
    """
    groups: dict[str, list[dict]] = {}
    alone: set[str] = set()
    for i, run in enumerate(runs):
        if size > 1 and stackable(run):
            settings = {**run["train"], **{k: None for k in PER_MODEL}, "plain": _plain_sgd(run)}
            key = json.dumps({**run, "seed": None, "train": settings}, sort_keys=True)
        else:
            key = str(i)
            if size > 1 and (run["train"]["optimizer"] != "sgd" or run["train"]["asam_rho"]):
                alone.add("ASAM" if run["train"]["asam_rho"] else run["train"]["optimizer"])
        groups.setdefault(key, []).append(run)
    if alone:
        _notice(f"{', '.join(sorted(alone))} runs train one model at a time: the batched kernel does SGD only "
                f"(Adam-type optimisers keep their own state per weight, ASAM takes a second gradient pass)")
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
    time, so that one bad run does not fail the others. A run's weights are stored before
    its result, so a result file always has its weights beside it.
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
    for run, (ds, weights) in zip(batch, results):
        store.write_weights(weights, store.weights_path(out, run_hash(run)))
        store.write_atomic(ds, store.run_path(out, run_hash(run)))
        records.append(_record(out, run, "diverged" if bool(ds["diverged"]) else "done", started))
    return records


def _drive(executor: engines.Engine, units: list[list[dict]], out: Path, device: str, retries: int,
           bar: tqdm) -> None:
    """Run every unit on ``executor``, resubmitting a unit whose worker was lost up to ``retries`` times.

    Where one lost worker takes every unit in flight with it (a broken local process pool),
    the units it took are not charged: they are run again one at a time, and a unit is
    charged only when it loses its worker while running alone. Any other error that escapes
    :func:`execute` (it records the runs' own errors) marks the unit's runs failed, and the
    sweep goes on.
    """
    counts = dict.fromkeys(("done", "failed", "diverged"), 0)
    lost = {i: 0 for i in range(len(units))}
    queue, alone, running = deque(range(len(units))), deque(), {}
    while queue or alone or running:
        isolated = bool(alone)  # units to run by themselves: one at a time, nothing beside them
        if any(by_itself for _, by_itself in running.values()) or (isolated and running):
            picked = []
        elif isolated:
            picked = [alone.popleft()]
        else:
            room = len(queue) if executor.in_flight is None else min(len(queue), executor.in_flight - len(running))
            picked = [queue.popleft() for _ in range(room)]
        if picked:
            futures = executor.submit_all(execute, [(units[i], str(out), device) for i in picked])
            running.update((f, (i, isolated)) for f, i in zip(futures, picked))
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            i, by_itself = running.pop(future)
            try:
                records = future.result()
            except executor.lost_errors:
                if executor.shared_fate and not by_itself:
                    alone.append(i)  # lost with others: which unit killed the worker is not known yet
                    continue
                lost[i] += 1
                if lost[i] <= retries:
                    (alone if executor.shared_fate else queue).append(i)
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


def _notice(message: str) -> None:
    tqdm.write(f"lrsc: {message}", file=sys.stderr)


def _complete(out: Path, run: dict, missing: list[str], device: str) -> None:
    """Add the ``missing`` model variables to a stored run from its stored weights."""
    train_set, test_set = load_data(run, pick_device(device))
    model = init_model(run, train_set)
    model.load_state_dict(torch.load(store.weights_path(out, run_hash(run)), map_location=train_set.x.device))
    path = store.run_path(out, run_hash(run))
    ds = store.load(path)
    for name, value in variables.evaluate(run, model, test_set, None, tuple(missing)).items():
        ds[name] = (variables.BY_NAME[name].dims, value)
    store.write_atomic(ds, path)


def set_aside_damaged(out: Path, runs: list[dict], then: str) -> dict[str, set[str] | None]:
    """Check every stored run file of ``runs``: one that cannot be read, or whose stored config
    does not hash to its name, is moved aside (``runs/<hash>.nc.corrupt``) and reported once
    (path, reason, ``then``: what happens next). Returns, by run hash, the variables each
    stored file holds, or None for a file moved aside."""
    stored: dict[str, set[str] | None] = {}
    for run in runs:
        h = run_hash(run)
        path = store.run_path(out, h)
        if not path.exists():
            continue
        problem, stored[h] = store.check_run_file(path, h)
        if problem:
            _notice(f"{path}: {problem}; moved aside to {store.set_aside(path, 'corrupt')}; {then}")
            stored[h] = None
    return stored


def heal(out: Path, runs: list[dict], device: str = "auto") -> None:
    """Make every stored run of ``runs`` in ``out`` trustworthy before the sweep reads it.

    A run file that cannot be read, or whose stored config does not hash to its name, is
    reported and moved aside (``runs/<hash>.nc.corrupt``), so the run is trained again. A run
    stored before some declared variable existed is *stale*: model variables it lacks are
    computed from its stored weights; if it lacks training variables (or its weights), its
    file is moved aside (``.stale``) and the run trained again. Nothing is mixed in as NaN.
    """
    stored_vars = set_aside_damaged(out, runs, "training the run again")
    stale: dict[str, list[str]] = {}
    for run in runs:
        h = run_hash(run)
        path, stored = store.run_path(out, h), stored_vars.get(h)
        if stored is None:  # never stored, or just moved aside
            continue
        missing = [v.name for v in variables.VARIABLES if v.name not in stored]
        if not missing:
            continue
        if all(variables.BY_NAME[n].kind == "model" for n in missing) and store.weights_path(out, h).exists():
            _complete(out, run, missing, device)
            stale.setdefault("completed from their stored weights", []).extend(missing)
        else:
            store.set_aside(path, "stale")
            stale.setdefault("trained again", []).extend(missing)
    for action, names in stale.items():
        _notice(f"stored runs in {out} lacked {', '.join(sorted(set(names)))}; {action}")


def run_sweep(cfg: dict | str | Path, out_dir: str | Path, overrides: list[str] | dict | None = None,
              device: str = "auto", progress: bool = True, models_at_once: int = MODELS_AT_ONCE,
              engine: str = "local", workers: int = 1, retries: int = 2, scheduler: str | None = None,
              slurm: engines.SlurmOptions | None = None) -> xr.Dataset:
    """Run (or resume) a sweep and return the collected dataset, also saved as ``out_dir/results.nc``.

    ``cfg`` is a sweep config dict or YAML path, checked in full before anything is written
    (see :func:`plan`). Runs that go through the stacked kernel and differ only in LR and
    seed are trained up to ``models_at_once`` at a time (see :func:`batches`); either way, a
    run's numbers are the same. Each run's file is written as soon as its batch ends, and
    stored runs are checked first (:func:`heal`).

    Units run on ``engine`` (``local``, ``dask``, ``slurm``; see :func:`lrsc.engines.make_executor`)
    with ``workers`` processes; a unit whose worker is lost is retried up to ``retries`` times.
    A run that raises is recorded as failed (see ``lrsc status``) and is NaN in the dataset,
    whose ``status`` variable says so; the dataset is still written, then :class:`RunsFailed`
    is raised naming the first failure. The next ``run_sweep`` tries failed runs again.
    """
    cfg, runs = plan(cfg, overrides)
    engines.check_options(engine, workers, scheduler)
    if retries < 0:
        raise ConfigError(f"--retries must be at least 0, got {retries}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder for the sweep's runs and results")
    heal(out, runs, device)
    todo = [r for r in runs if not store.run_path(out, run_hash(r)).exists()]
    # the engine starts (and may fail on bad options) before anything is written; none is needed when all is done
    with (engines.make_executor(engine, workers, device=device, scheduler=scheduler, slurm=slurm,
                                folder=out / "slurm") if todo else nullcontext()) as executor:
        store.write_text_atomic(yaml.safe_dump(cfg, sort_keys=False), out / "sweep.yaml")
        with tqdm(total=len(runs), initial=len(runs) - len(todo), desc=f"sweep {out.name}", unit="run",
                  disable=not progress) as bar:
            if todo:
                _drive(executor, batches(todo, models_at_once), out, device, retries, bar)
    results = collect(out, cfg, check=False)  # heal checked the stored files; the new ones were just written
    store.write_atomic(results, out / "results.nc")
    failures(out, cfg, raise_=True)
    return results


def failures(out_dir: str | Path, cfg: dict | None = None, raise_: bool = False) -> list[tuple[dict, dict]]:
    """``(run, status record)`` of the sweep's failed runs; with ``raise_``, raise :class:`RunsFailed`
    when there are any, naming how many and the first one's error in one line."""
    records = statuses(out_dir, cfg)
    failed = [(run, r) for run, r in records if r["status"] == "failed"]
    if failed and raise_:
        run, record = failed[0]
        raise RunsFailed(f"{len(failed)} of {len(records)} runs failed; the first ({run_hash(run)}): "
                         f"{record['error'].strip().splitlines()[-1]} (see: lrsc status {out_dir})")
    return failed


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


def collect(out_dir: str | Path, cfg: dict | None = None, check: bool = True) -> xr.Dataset:
    """The sweep's dataset from the run files in ``out_dir`` (``cfg``: default ``out_dir/sweep.yaml``).

    Runs without a result are NaN, and the ``status`` variable says why (see ``store.collect``).
    With ``check``, a run file that cannot be read is moved aside and its run counted as pending.
    """
    cfg = cfg or read_config(out_dir)
    if check:
        set_aside_damaged(Path(out_dir), expand(cfg), "run the sweep again to recompute it")
    dims = axes(cfg)
    grid_points = [dict(zip(dims, vals)) for vals in itertools.product(*dims.values())]
    cells = [(point, store.run_path(out_dir, run_hash(run)), record["status"])
             for point, (run, record) in zip(grid_points, statuses(out_dir, cfg))]
    return store.collect(cells, dims, cfg)
