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

import json
import logging
from pathlib import Path

import xarray as xr

from lrsc import config as config_mod
from lrsc import edge, engines, extensions, models, sweepdir
from lrsc.collect import collect, provenance, up_to_date
from lrsc.drive import drive
from lrsc.errors import ConfigError, RunsFailed
from lrsc.heal import check, heal
from lrsc.progress import in_notebook
from lrsc.runs import check_contract
from lrsc.seeding import check_device, pick_device
from lrsc.store import STATUSES, RunStore, State, default_store
from lrsc.train import check_precision
from lrsc.plan import Run, batches, one_at_a_time, plan

MODELS_AT_ONCE = 32  # most runs trained together: bounds the memory of stacked weights and data
log = logging.getLogger("lrsc")


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


def check_contracts(runs: list[Run], keep: bool = True) -> None:
    """Put one batch of data through one model of each dataset and model the ``runs`` use, before
    any trains (:func:`lrsc.runs.check_contract`): a dataset that does not hold what its check
    declared, or a model that fails on its inputs, is a ConfigError here rather than a failure of
    every run after its training. ``keep``: keep each built dataset in this process's cache (for
    runs that train in this process)."""
    seen = set()
    for run in runs:
        key = json.dumps([run.config[k] for k in ("dataset", "dataset_params", "model", "model_params")],
                         sort_keys=True)
        if key not in seen:
            seen.add(key)
            check_contract(run.config, keep)


def run_sweep(cfg: dict | str | Path, out_dir: str | Path, overrides: list[str] | dict | None = None,
              device: str = "auto", progress: bool = True, models_at_once: int = MODELS_AT_ONCE,
              engine: str = "local", workers: int = 1, retries: int = 2, scheduler: str | None = None,
              slurm: engines.SlurmOptions | None = None, store: str | Path | None = None,
              plugins: list[str] | None = None) -> xr.Dataset:
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

    ``plugins`` (module names or ``.py`` paths, ``lrsc sweep --import``) are added to the sweep's
    own ``plugins`` and imported before it is planned; its ``sweep.yaml`` keeps them, so ``lrsc
    status`` and a rerun find its datasets, models and metrics, and its workers get them by value.

    An ``lr`` axis written as ``{edge: true, ...}`` is first resolved by probing
    (:func:`lrsc.edge.resolve`): each probed LR is a sweep of its own under ``out_dir/probe/``, on
    the same run store, whose runs the sweep then reuses.
    """
    given = config_mod.read(cfg, overrides)
    if plugins:
        given = config_mod.add_plugins(given, plugins)
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
    local = engine == "local"  # the runs train on this machine: their data and model are checked here
    if local:
        check_contracts(todo, keep=workers == 1)
    if todo:
        alone = one_at_a_time(todo)
        if alone and models_at_once > 1:
            log.info("runs with %s train one model at a time: the batched kernel implements none of these settings",
                     ", ".join(sorted(alone)))
        units = batches(todo, models_at_once, workers if local else 1)
        with engines.make_executor(engine, workers, device=device, scheduler=scheduler, slurm=slurm,
                                   folder=out / "slurm") as executor:
            sweepdir.write(out, given, cfg, runs, store.root)
            blob = None if executor.in_process else extensions.snapshot()
            drive(executor, units, store, device, retries, blob, str(out), len(runs), progress, check=not local)
    else:
        sweepdir.write(out, given, cfg, runs, store.root)
    results = None if todo else up_to_date(out)  # a sweep asked for again: its results.nc, unless the store moved on
    if results is None:
        results = collect(out, progress and not in_notebook())  # in a notebook, the sweep's bar is the one bar
        sweepdir.write_results(out, results, provenance(out))
    counts = {status: int((results.status == status).sum()) for status in STATUSES}
    log.info("%s: %d runs: %s (%d not stored when the sweep started)", out, len(runs),
             ", ".join(f"{n} {status}" for status, n in counts.items() if n), len(todo))
    failed = sweepdir.failures(out)
    if failed:
        first = failed[0]
        raise RunsFailed(f"{len(failed)} of {len(runs)} runs failed; the first ({first[0]}): {first[1]} "
                         f"(see: lrsc status {out})")
    return results
