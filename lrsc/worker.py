"""What a worker does with a work unit (one of :func:`lrsc.plan.batches`): train, evaluate, store.

:func:`execute` is what any engine runs for a unit (this process, a local worker process, a
Dask task, a SLURM job): it claims each run in the store, trains the runs it claimed, stores
each one as soon as it finishes, and releases the claims. It is a pure function of its
arguments, so any worker can run it, and run it again.

A run's numbers depend on its settings only, not on the machine or the engine: every run is
trained and evaluated with :data:`THREADS` intra-op threads (CPU convolutions and reductions
split their work by the thread count, which changes the order of their sums), whatever the
process was given. Cores are used by training runs side by side (``--workers``).
"""
from __future__ import annotations

import io
import json
import logging
import time
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import xarray as xr
from torch import nn

import lrsc
from lrsc import datasets, extensions, models, netcdf, variables
from lrsc.errors import ConfigError
from lrsc.evaluation import evaluate, neuron_selectivity
from lrsc.plan import Run
from lrsc.provenance import provenance
from lrsc.runs import check_contract, init_model, load_data
from lrsc.seeding import pick_device
from lrsc.stacked import can_train, train_batched
from lrsc.stopping import TrainResult
from lrsc.store import FINISHED, RunStore, Unwritable
from lrsc.train import train

log = logging.getLogger("lrsc")
THREADS = 1  # intra-op threads of every run's training and evaluation (recorded in its provenance)

# (run hash, status) -> None: told as each run of a unit ends (done, diverged, failed, or claimed
# by another process).
Report = Callable[[str, str], None]


@contextmanager
def fixed_threads() -> Iterator[None]:
    """Run the block with :data:`THREADS` torch intra-op threads, then restore the process's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _dataset(run: Run, values: dict) -> xr.Dataset:
    """A run's variables as a dataset, each with its declared attributes."""
    return xr.Dataset({name: (variables.get(name).dims, value, variables.get(name).attrs())
                       for name, value in values.items()},
                      attrs={"config": json.dumps(run.config, sort_keys=True), "hash": run.hash,
                             "lrsc_version": lrsc.__version__})


def weights_bytes(model: nn.Module) -> bytes:
    """The bytes of a ``.pt`` file holding ``model``'s state dict (on the CPU)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def record(run: Run, status: str, stored: list[str], **fields) -> dict:
    """A run's record (see :mod:`lrsc.store`) for the variables ``stored``, with ``fields`` added."""
    code = {**run.code, "variables": {k: v for k, v in run.code["variables"].items() if k in stored}}
    return {"status": status, "config": run.config, "hashed": run.hashed, "code": code, "variables": sorted(stored),
            **fields}


def store_run(store: RunStore, run: Run, model: nn.Module, result: TrainResult, test_set: datasets.Split,
              train_time_s: float) -> str:
    """Evaluate a trained run and commit it to ``store``; returns its status (``done`` or ``diverged``)."""
    started = time.time()
    ds = _dataset(run, evaluate(run.config, model, test_set, result))
    path = "stacked kernel" if can_train(model, run.settings) else "one model, autograd"
    status = "diverged" if result.diverged else "done"
    prov = provenance(str(test_set.x.device), path, train_time_s + time.time() - started, result.fit_step)
    store.commit(run.hash, netcdf.dumps(ds), weights_bytes(model),
                 record(run, status, list(ds.data_vars), provenance=prov))
    return status


def _train_one(store: RunStore, run: Run, device: str, progress: bool) -> str:
    train_set, test_set = load_data(run.config, pick_device(device))
    model = init_model(run.config, train_set)
    started = time.time()
    result = train(model, train_set, run.settings, seed=run.config["seed"], progress=progress,
                   snapshot=neuron_selectivity(run.config, test_set),
                   snapshot_steps=tuple(run.config["metrics"]["snapshot_steps"]))
    return store_run(store, run, model, result, test_set, time.time() - started)


def _train_stack(store: RunStore, unit: list[Run], device: str, progress: bool, report: Report | None) -> None:
    """Train a unit of stackable runs at once; each is stored as soon as it leaves the stack."""
    dev = pick_device(device)
    splits = {run.config["seed"]: load_data(run.config, dev) for run in unit}  # runs of one seed share their data
    nets = [init_model(run.config, splits[run.config["seed"]][0]) for run in unit]
    started = time.time()

    def done(i: int, result: TrainResult) -> None:
        run = unit[i]
        status = store_run(store, run, nets[i], result, splits[run.config["seed"]][1], (time.time() - started) / len(unit))
        if report:
            report(run.hash, status)

    train_batched(nets, [splits[r.config["seed"]][0] for r in unit], [r.settings for r in unit],
                  seed=[r.config["seed"] for r in unit], progress=progress, on_done=done,
                  snapshot=[neuron_selectivity(r.config, splits[r.config["seed"]][1]) for r in unit],
                  snapshot_steps=tuple(unit[0].config["metrics"]["snapshot_steps"]))


def _fail(store: RunStore, run: Run, error: str, report: Report | None) -> str:
    store.write_record(run.hash, record(run, "failed", [], hash=run.hash, error=error))
    if report:
        report(run.hash, "failed")
    return "failed"


def execute(unit: list[Run], store_root: str, device: str = "auto", extension_blob: bytes | None = None,
            sweep: str = "", progress: bool = False, report: Report | None = None,
            check: bool = False) -> list[tuple[str, str]]:
    """Train one unit: claim each of its runs in the store at ``store_root``, train the ones
    claimed, store each as it finishes, release the claims. Returns ``(hash, status)`` per run:
    ``done``, ``diverged``, ``failed`` (the run raised; its record holds the traceback), or
    ``claimed`` (another process holds it). ``extension_blob`` carries the registrations made
    outside lrsc (``lrsc.extensions.snapshot``); ``report`` is told as each run ends. With
    ``check``, the unit's data and model are checked first (:func:`lrsc.runs.check_contract`, for
    engines whose machines the sweep's own process cannot check for): a broken contract fails
    the unit's runs with its one-line reason, before any trains. Every run
    trains and is evaluated with :data:`THREADS` threads. A store that cannot be written (a full
    disk) raises :class:`lrsc.store.Unwritable`: the run stays pending, nothing half-written.
    """
    extensions.install(extension_blob)
    store = RunStore(store_root)
    statuses: dict[str, str] = {}
    mine = []
    try:
        for run in unit:
            if store.finished(run.hash):
                statuses[run.hash] = store.state(run.hash).status  # trained elsewhere since it was planned
            elif store.claim(run.hash, sweep) is None:
                mine.append(run)
                if store.finished(run.hash):  # finished by the owner of the claim just taken over
                    statuses[run.hash] = store.state(run.hash).status
            else:
                statuses[run.hash] = "claimed"
        with store.heartbeat([r.hash for r in mine]), fixed_threads():
            claimed = [r for r in mine if r.hash not in statuses]
            broken = _broken_contract(claimed[0]) if check and claimed else ""
            if broken:
                for run in claimed:
                    statuses[run.hash] = _fail(store, run, broken, report)
            else:
                _train_claimed(store, claimed, device, progress, report, statuses)
    finally:
        for run in mine:
            store.release(run.hash)
    return [(run.hash, statuses[run.hash]) for run in unit]


def _broken_contract(run: Run) -> str:
    """The run's data and model checked against their contract here (:func:`lrsc.runs.check_contract`):
    ``""``, or the error, as a run's record keeps it (its last line is the reason)."""
    try:
        check_contract(run.config)
    except ConfigError:
        return traceback.format_exc()
    return ""


def _train_claimed(store: RunStore, mine: list[Run], device: str, progress: bool, report: Report | None,
                   statuses: dict[str, str]) -> None:
    """Train the claimed runs; when a stack raises, its unfinished runs train one at a time, so
    one bad run does not fail the others."""
    if len(mine) > 1:
        try:
            _train_stack(store, mine, device, progress, report)
        except Unwritable:
            raise
        except Exception:  # the runs it did not store train one at a time below, each recording its own error
            log.warning("a stack of %d runs raised; its unfinished runs train one at a time:\n%s", len(mine),
                        traceback.format_exc())
        for run in mine:
            state = store.state(run.hash)
            if state.status in FINISHED:
                statuses[run.hash] = state.status
        mine = [run for run in mine if run.hash not in statuses]
    for run in mine:
        try:
            statuses[run.hash] = _train_one(store, run, device, progress)
            if report:
                report(run.hash, statuses[run.hash])
        except Unwritable:
            raise
        except Exception:
            statuses[run.hash] = _fail(store, run, traceback.format_exc(), report)

