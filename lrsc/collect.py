"""Collecting results: a sweep's runs as one xarray dataset with a dim per grid axis.

:func:`collect` stacks the run files of a sweep folder's grid from the run store; every
registered variable is there, and so is every variable a run file holds (a metric registered
in another session is kept, not dropped), each with its CF ``units`` and ``long_name``.
:func:`provenance` gathers where each run came from. :func:`to_grid` turns results of models
trained by hand into the same shape, so that the report and plot functions take them too.
This module imports no torch.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

import lrsc
from lrsc import identity, netcdf, settings, sweepdir, variables
from lrsc.provenance import FIELDS
from lrsc.store import FINISHED, STATUS_DEFINITION, RunStore

log = logging.getLogger("lrsc")
# What collect() writes besides the runs' values (its files, the ``status`` and ``run`` variables,
# the dims it leaves out, the variables' and coordinates' attributes): part of a results.nc's
# fingerprint, raised whenever that changes, so that files collected before are collected again
# rather than read as they are.
LAYOUT = 3
RUN_ATTRS = {"long_name": "run hash", "description": "the run's name in the run store (its <hash>.nc, .pt and "
             ".json); lrsc.runs.model_at gives its trained model"}


def read_results(path: str | Path) -> xr.Dataset:
    """Load a stored dataset fully into memory (the file is closed on return)."""
    return netcdf.loads(Path(path).read_bytes())


def _fill(dtype: np.dtype) -> Any:
    return {"b": False, "i": 0, "u": 0, "U": "", "O": "", "S": ""}.get(np.dtype(dtype).kind, np.nan)


def _specs(loaded: Iterable[xr.Dataset]) -> tuple[dict[str, tuple], dict[str, int]]:
    """``{name: (dims, dtype, attrs)}`` of every variable, registered or stored, and the longest
    size of each extra dim, over the runs' datasets."""
    specs = {v.name: (v.dims, np.dtype(object if v.dtype == "U" else v.dtype), v.attrs()) for v in variables.declared()}
    sizes: dict[str, int] = {}
    for ds in loaded:
        for dim, n in ds.sizes.items():
            sizes[dim] = max(sizes.get(dim, 0), n)
        for name, var in ds.data_vars.items():
            if name not in specs:  # registered in another session: keep it, described by its own file
                specs[name] = (var.dims, np.dtype(object) if var.dtype.kind in "US" else var.dtype, dict(var.attrs))
    return specs, sizes


def fingerprint(out_dir: str | Path) -> str:
    """What a sweep folder's collected dataset is made of: its config, the variables' definitions
    and code fingerprints, the lrsc version, and each grid run's status and stored files'
    checksums. ``results.nc`` keeps the fingerprint it was collected at (attr ``fingerprint``):
    while it matches, the file is up to date."""
    out = Path(out_dir)
    grid = sweepdir.read_grid(out)
    store = RunStore(grid["store"])
    runs = []
    for h in grid["hashes"]:
        state = store.state(h, verify=False)
        runs.append([h, state.status, state.record.get("files")])
    content = [sweepdir.read_config(out), variables.definitions(), identity.variable_fingerprints(),
               lrsc.__version__, LAYOUT, runs]
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def up_to_date(out_dir: str | Path) -> xr.Dataset | None:
    """The sweep folder's ``results.nc`` when it was collected from what the run store holds now
    (see :func:`fingerprint`), else None."""
    path = Path(out_dir) / "results.nc"
    try:
        with path.open("rb") as f:
            kind = netcdf.engine(f.read(4))
        with xr.open_dataset(path, engine=kind) as head:
            stored = head.attrs.get("fingerprint")
    except (OSError, ValueError, TypeError):
        return None
    return read_results(path) if stored == fingerprint(out_dir) else None


def collect(out_dir: str | Path, progress: bool = False) -> xr.Dataset:
    """The sweep's dataset from the run store: one dim per grid axis, in grid order.

    Runs without results hold each variable's fill value (NaN, False, 0, ""), and the
    ``status`` variable says why (see :data:`lrsc.store.STATUS_DEFINITION`). A run whose files
    do not match their checksums or their name is reported, set aside (``<hash>.nc.corrupt``,
    ...) and counted as damaged, so the next sweep trains it again; a ``grid.json`` that places
    a run elsewhere than its own grid point is refused (ConfigError). A variable a run holds
    under another definition than the registered one (see :mod:`lrsc.identity`) is left out for
    that run (its fill value), with a warning: never shown under the new one. Traces are padded with NaN to the
    longest run along ``step`` (coordinate: the step after which each record was taken),
    per-neuron values to the widest model along ``neuron``; a dim no run fills (``snapshot`` when
    ``metrics.snapshot_steps`` is empty) is left out, with the variables on it, so that every
    variable has values. ``progress`` shows a bar over the files read. The ``run`` variable holds
    each grid point's run hash, and the ``fingerprint`` attr says what the dataset was collected from.
    """
    out = Path(out_dir)
    grid = sweepdir.read_grid(out)
    cfg = grid["config"]
    sweepdir.check_grid(out)
    store = RunStore(grid["store"])
    dims = grid["dims"]
    shape = tuple(len(v) for v in dims.values())
    statuses, hashes = np.empty(shape, dtype=object), np.empty(shape, dtype=object)
    stored: dict[tuple, tuple[str, dict]] = {}
    for point, h in zip(sweepdir.points(grid), grid["hashes"]):
        pos = tuple(dims[d].index(point[d]) for d in dims)
        hashes[pos] = h
        state = store.state(h)
        if state.status == "damaged":
            moved = store.set_aside(h, "corrupt")
            log.warning("run %s in %s: %s; moved aside (%s); run the sweep again to train it", h, store.root,
                        state.problem, ", ".join(p.name for p in moved))
        statuses[pos] = state.status
        if state.status in FINISHED:
            stored[pos] = (h, state.record)
    made_of = fingerprint(out)  # after damaged runs are set aside
    loaded = {pos: netcdf.loads(store.read(h, "nc", record))
              for pos, (h, record) in tqdm(stored.items(), desc=f"collect {out.name}", unit="run",
                                           disable=not progress, leave=False)}
    current, older = identity.variable_fingerprints(), set()
    for pos, (_, record) in stored.items():
        names = identity.redefined(record, current, known_only=True)
        loaded[pos] = loaded[pos].drop_vars(names)
        older.update(names)
    if older:
        log.warning("runs of %s hold an older definition of %s, left out; run the sweep again to recompute them",
                    out, ", ".join(sorted(older)))
    specs, sizes = _specs(loaded.values())
    sizes["prune_fraction"] = len(cfg["metrics"]["prune_fractions"])
    sizes["snapshot"] = len(cfg["metrics"]["snapshot_steps"])
    specs = {name: spec for name, spec in specs.items() if all(sizes.get(d, 0) for d in spec[0])}
    data = {name: np.full(shape + tuple(sizes[d] for d in d_), _fill(dt), dtype=dt)
            for name, (d_, dt, _) in specs.items()}
    for pos, ds in loaded.items():
        for name in set(ds.data_vars) & set(data):
            value = ds[name].values
            data[name][pos + tuple(slice(0, n) for n in value.shape)] = value
    for pos in np.ndindex(shape):
        if pos not in stored and "reason" in data:
            data["reason"][pos] = statuses[pos]
    results = xr.Dataset({name: (list(dims) + list(d_), data[name], attrs) for name, (d_, _, attrs) in specs.items()},
                         coords=_coords(dims, sizes, cfg), attrs={**_attrs(cfg, store.root), "fingerprint": made_of})
    for name, (_, dt, _) in specs.items():
        if dt == object:
            results[name] = results[name].astype(str)
    results["status"] = (list(dims), statuses.astype(str), {"long_name": "run status",
                                                            "description": STATUS_DEFINITION})
    results["run"] = (list(dims), hashes.astype(str), RUN_ATTRS)
    return results


def _coords(dims: dict[str, list], sizes: dict[str, int], cfg: dict) -> dict:
    every = cfg["train"]["record_every"]
    # every coordinate is dimensionless: CF units "1" goes unwritten (variables.cf_units)
    coords = {dim: (dim, values, {"long_name": settings.label(dim)}) for dim, values in dims.items()}
    coords["step"] = ("step", every * np.arange(1, sizes.get("step", 0) + 1),
                      {"long_name": "training steps taken when the record was made"})
    coords["prune_fraction"] = ("prune_fraction", cfg["metrics"]["prune_fractions"],
                                {"long_name": "pruning fraction q"})
    coords["snapshot"] = ("snapshot", cfg["metrics"]["snapshot_steps"],
                          {"long_name": "training step of the snapshot"})
    return {name: coord for name, coord in coords.items() if len(coord[1])}  # a dim no run fills is left out


def _attrs(cfg: dict, store_root: Path) -> dict:
    return {"title": cfg.get("title", ""), "config": json.dumps(cfg, sort_keys=True),
            "definitions": variables.definitions(), "lrsc_version": lrsc.__version__, "store": str(store_root),
            "provenance": "per-run provenance (versions, git commit, device, threads, training path, wall time, fit "
                          "step) is provenance.nc beside results.nc, on the same grid"}


def provenance(out_dir: str | Path) -> xr.Dataset:
    """Where each run of the sweep came from (:data:`lrsc.provenance.FIELDS`), one variable per
    field over the grid's dims, read from the runs' records; empty or NaN for runs without one."""
    grid = sweepdir.read_grid(out_dir)
    store = RunStore(grid["store"])
    dims = grid["dims"]
    shape = tuple(len(v) for v in dims.values())
    values = {name: np.empty(shape, dtype=object) for name in FIELDS}
    for point, h in zip(sweepdir.points(grid), grid["hashes"]):
        pos = tuple(dims[d].index(point[d]) for d in dims)
        prov = store.state(h, verify=False).record.get("provenance", {})
        for name in FIELDS:
            values[name][pos] = prov.get(name)
    out = {}
    for name, (units, long_name) in FIELDS.items():
        column = values[name]
        known = [v for v in column.flat if v is not None]
        kind = type(known[0]) if known else str
        fill = {str: "", bool: False, int: -1}.get(kind, np.nan)
        array = np.array([fill if v is None else v for v in column.flat], dtype=kind if kind is not str else object)
        out[name] = (list(dims), array.reshape(shape).astype(str if kind is str else array.dtype),
                     {**variables.cf_units(units), "long_name": long_name})
    return xr.Dataset(out, coords={dim: values for dim, values in dims.items()})


def to_grid(rows: Iterable[dict], dims: tuple[str, ...] = ("lr", "seed")) -> xr.Dataset:
    """Results of runs made by hand as a sweep-shaped dataset: ``rows`` are dicts with a value for
    each of ``dims`` and any variables (e.g. ``{"lr": 0.1, "seed": 0, "test_acc": 0.8}``, or what
    :func:`lrsc.evaluation.measure` returns), one per run. Returns a dataset with one dim per
    entry of ``dims`` and every variable; a registered variable gets its attributes."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    missing = [d for d in dims if d not in frame]
    if missing:
        raise ValueError(f"to_grid: every row needs a value for {', '.join(missing)}")
    ds = frame.set_index(list(dims)).sort_index().to_xarray()
    for name in ds.data_vars:
        if name in variables.REGISTRY:
            ds[name].attrs.update(variables.get(name).attrs())
    return ds
