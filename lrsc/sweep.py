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
from pathlib import Path

import xarray as xr

from lrsc import config as config_mod
from lrsc import datasets, edge, engines, extensions, models, sweepdir
from lrsc.collect import collect, provenance, up_to_date
from lrsc.drive import drive
from lrsc.errors import ConfigError, RunsFailed
from lrsc.heal import heal
from lrsc.seeding import check_device, pick_device
from lrsc.store import RunStore, default_store
from lrsc.train import check_precision
from lrsc.units import Run, batches, one_at_a_time

MODELS_AT_ONCE = 32  # most runs trained together: bounds the memory of stacked weights and data
log = logging.getLogger("lrsc")


class Planner:
    """Normalises and checks run configs against the registries, each dataset and model once."""

    def __init__(self) -> None:
        self._info: dict[str, datasets.Info] = {}
        self._models: set[str] = set()

    def prepare(self, raw: dict) -> tuple[dict, str]:
        """A run's complete, normalised config (dataset and model parameters with their defaults)
        and its hash; raises ConfigError naming the first problem."""
        run = config_mod.normalise(raw)
        run["dataset_params"] = datasets.normalise(run["dataset"], run["dataset_params"])
        run["model_params"] = models.normalise(run["model"], run["model_params"])
        key = repr((run["dataset"], sorted(run["dataset_params"].items())))
        if key not in self._info:
            self._info[key] = datasets.check(run["dataset"], run["dataset_params"])
        info = self._info[key]
        model_key = repr((run["model"], sorted(run["model_params"].items()), key))
        if model_key not in self._models:
            models.check(run["model"], info.input_shape, info.num_classes, run["model_params"])
            self._models.add(model_key)
        if run["train"]["batch_size"] > info.n_train:
            raise ConfigError(f"train.batch_size={run['train']['batch_size']} exceeds the {info.n_train} training "
                              f"samples of {run['dataset']}; use a batch size of at most {info.n_train}")
        defaults = {"dataset_params": datasets.normalise(run["dataset"], {}),
                    "model_params": models.normalise(run["model"], {})}
        return run, config_mod.run_hash(run, defaults)


def plan(cfg: dict | str | Path, overrides: list[str] | dict | None = None) -> tuple[dict, list[Run]]:
    """Load a sweep config and check every run of its grid before anything runs.

    Returns ``(cfg, runs)``: the config with its grid's values normalised (``lr: 1`` reads
    ``1.0``), and one :class:`~lrsc.units.Run` per grid point. Beyond the checks of
    :func:`lrsc.config.load`, each run's dataset and model are checked by their registries
    (ranges, sizes against the source data, the data root and its layout, the model taking the
    dataset's inputs) and its batch size against the training set. Two grid points that are
    the same run after normalisation (``grid.lr: [1, 1.0]``) are refused. Raises ConfigError
    naming the first problem.
    """
    cfg = config_mod.load(cfg, overrides)
    planner = Planner()
    prepared, seen = [], {}
    for raw, point in zip(config_mod.expand(cfg), config_mod.grid_points(cfg)):
        run, h = planner.prepare(raw)
        if h in seen:
            raise ConfigError(f"the grid holds one run twice: {seen[h]} and {point} are the same settings once "
                              f"normalised (e.g. 1 and 1.0); list each value once")
        seen[h] = point
        prepared.append((run, h))
    paths = {axis: config_mod.axis_path(axis) for axis in cfg["grid"]}
    cfg["grid"] = {axis: _unique(config_mod.get(run, path) for run, _ in prepared) for axis, path in paths.items()}
    for key in ("dataset", "model"):  # the stored config names every parameter, read back without the registries
        if key not in paths:
            cfg[f"{key}_params"] = prepared[0][0][f"{key}_params"]
    dims = list(config_mod.axes(cfg))
    return cfg, [Run(run, h, {dim: config_mod.get(run, path) for dim, path in zip(dims, paths.values())})
                 for run, h in prepared]


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
    running at the same time (a run is claimed before it is trained). Runs that go through the
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
    loaded = config_mod.load(cfg, overrides)
    engines.check_options(engine, workers, scheduler)
    check_device(device)
    if retries < 0:
        raise ConfigError(f"--retries must be at least 0, got {retries}")
    out = sweepdir.check_out(out_dir)
    store = RunStore(store or default_store(out))
    if edge.spec_of(loaded):
        loaded = edge.resolve(loaded, lambda lr: run_sweep(
            edge.at_lr(loaded, lr), out / "probe" / f"lr_{lr:g}", device=device, progress=progress,
            models_at_once=models_at_once, engine=engine, workers=workers, retries=retries, scheduler=scheduler,
            slurm=slurm, store=store.root))
    cfg, runs = plan(loaded)
    if engine == "local" or device != "auto":  # where the runs will train is known here
        for run in runs:
            check_precision(run.settings, pick_device(device))
    slurm = (slurm or engines.SlurmOptions()).for_sweep(
        cfg.get("resources"), {name: models.resources(name) for name in sorted({r.config["model"] for r in runs})})
    heal(store, runs, out, device)
    todo = [r for r in runs if not store.finished(r.hash)]
    if todo:
        alone = one_at_a_time(todo)
        if alone and models_at_once > 1:
            log.info("%s runs train one model at a time: the batched kernel does SGD only (Adam-type optimisers "
                     "keep their own state per weight, ASAM takes a second gradient pass)", ", ".join(sorted(alone)))
        units = batches(todo, models_at_once, workers if engine == "local" else 1)
        with engines.make_executor(engine, workers, device=device, scheduler=scheduler, slurm=slurm,
                                   folder=out / "slurm") as executor:
            sweepdir.write(out, cfg, runs, store.root)
            blob = None if executor.in_process else extensions.snapshot()
            drive(executor, units, store, device, retries, blob, str(out), len(runs), progress)
    else:
        sweepdir.write(out, cfg, runs, store.root)
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
