"""Result storage: per run a netCDF file of its results, its trained weights and a status
file, and the sweep collected as one xarray.Dataset.

Every file is written to a temporary name and renamed into place, so a reader (or a
resumed sweep) sees either a finished file or none.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import xarray as xr

import lrsc
from lrsc import variables
from lrsc.config import run_hash

ENGINE = "h5netcdf"

STATUSES = ("pending", "running", "stale", "done", "failed", "diverged")
FINISHED = ("done", "diverged")  # the statuses of a run with a result file
STATUS_DEFINITION = ("pending (not run yet), running, stale (recorded as running by a process of this host that is "
                     "gone), done, failed (raised; NaN variables, False flags, 0 steps) or diverged")


@contextmanager
def _atomic(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block has written it, rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``ds`` as netCDF to ``path`` through a temporary file and a rename."""
    with _atomic(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE)


def write_weights(state: dict, path: str | Path) -> None:
    """Store a run's trained weights (a state dict) with torch.save, through a temporary file."""
    with _atomic(path) as tmp:
        torch.save(state, tmp)


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with _atomic(path) as tmp:
        tmp.write_text(text)


def load(path: str | Path) -> xr.Dataset:
    """Load a stored dataset fully into memory (the file is closed on return)."""
    return xr.load_dataset(path, engine=ENGINE)


def run_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.nc"


def weights_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.pt"


def check_run_file(path: Path, expected_hash: str) -> tuple[str | None, set[str]]:
    """``(problem, variables)`` of a stored run file: ``problem`` is None for a file that reads
    in full and whose stored config hashes to ``expected_hash``, else why it cannot be trusted;
    ``variables`` are the names it holds."""
    try:
        ds = load(path)
    except Exception as e:  # truncated, overwritten, not netCDF: all mean the same here
        return f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})", set()
    try:
        stored = run_hash(json.loads(ds.attrs["config"]))
    except (KeyError, ValueError, TypeError) as e:
        return f"holds no readable run config ({type(e).__name__})", set()
    if stored != expected_hash:
        return f"its stored config hashes to {stored}, not to its name", set()
    return None, set(ds.data_vars)


def set_aside(path: Path, why: str) -> Path:
    """Rename a run file that cannot be used to ``<name>.<why>`` (kept for inspection); returns the new path."""
    target = path.with_name(f"{path.name}.{why}")
    os.replace(path, target)
    return target


def status_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.json"


def write_status(out_dir: str | Path, run_hash: str, record: dict) -> None:
    """Store a run's status record (``{"status": ..., ...}``, JSON) beside its result file."""
    write_text_atomic(json.dumps(record, indent=1), status_path(out_dir, run_hash))


def _gone(record: dict) -> bool:
    """Whether a ``running`` record was written by a process of this host that no longer runs."""
    if record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError):
        return False
    return False


def read_status(out_dir: str | Path, run_hash: str) -> dict:
    """A run's status record; the result file decides whether it is finished.

    ``{"status": "pending"}`` when nothing is stored. A run with a readable result file is
    ``done`` or ``diverged`` even if its status file was not updated (the process died in
    between); a status ``done`` without a result file (deleted or moved aside to rerun the
    run) reads as ``pending``; ``running`` written by a process of this host that is gone
    reads as ``stale``.
    """
    path = status_path(out_dir, run_hash)
    try:
        record = json.loads(path.read_text()) if path.exists() else {"status": "pending"}
    except ValueError:  # a status file cut short: the result file (or its absence) decides
        record = {"status": "pending"}
    result = run_path(out_dir, run_hash)
    if result.exists() and record["status"] not in FINISHED:
        try:
            with xr.open_dataset(result, engine=ENGINE) as ds:
                record = {"status": "diverged" if bool(ds["diverged"]) else "done"}
        except Exception:
            record = {"status": "pending"}  # an unreadable result counts for nothing: the sweep heals it
    elif not result.exists() and record["status"] in FINISHED:
        record = {"status": "pending"}
    elif record["status"] == "running" and _gone(record):
        record = {**record, "status": "stale"}
    return record


def collect(runs: Sequence[tuple[dict, Path, str]], axes: dict[str, list], config: dict) -> xr.Dataset:
    """Stack per-run files into one dataset with one dim per grid axis (in grid order).

    runs: ``(axis_values, path, status)`` triples covering the whole grid, where ``status``
    is the run's status for when ``path`` does not exist; axes: ``{dim: values}``. Every
    variable of ``lrsc.variables.VARIABLES`` is there, with its definition, whatever was
    stored: runs without a result hold its fill value (NaN, False, 0, ""). Traces are padded
    with NaN to the longest run along ``step`` (coordinate: the step after which each record
    was taken), per-neuron snapshots to the widest model along ``neuron``. Files are read one
    at a time, so the traces are held in memory once. The ``status`` variable gives each
    run's status (see ``STATUS_DEFINITION``).
    """
    shape = tuple(len(v) for v in axes.values())
    sizes = {"step": 0, "neuron": 0, "prune_fraction": len(config["metrics"]["prune_fractions"]),
             "snapshot": len(config["metrics"]["snapshot_steps"])}
    stored = [path for _, path, _ in runs if path.exists()]
    for path in stored:  # first pass, headers only: the longest trace and the widest snapshot
        with xr.open_dataset(path, engine=ENGINE) as ds:
            for dim in ("step", "neuron"):
                sizes[dim] = max(sizes[dim], ds.sizes.get(dim, 0))
    data = {v.name: np.full(shape + tuple(sizes[d] for d in v.dims), v.fill, dtype=object if v.dtype == "U" else v.dtype)
            for v in variables.VARIABLES}
    status = np.empty(shape, dtype=object)
    for vals, path, run_status in runs:
        pos = tuple(axes[dim].index(vals[dim]) for dim in axes)
        if not path.exists():
            status[pos] = data["reason"][pos] = run_status
            continue
        ds = load(path)
        status[pos] = "diverged" if bool(ds["diverged"]) else "done"
        for var in variables.VARIABLES:
            value = ds[var.name].values
            data[var.name][pos + tuple(slice(0, n) for n in value.shape)] = value
    every = config["train"]["record_every"]
    coords = {**{dim: values for dim, values in axes.items()},
              "step": every * np.arange(1, sizes["step"] + 1), "prune_fraction": config["metrics"]["prune_fractions"],
              "snapshot": config["metrics"]["snapshot_steps"]}
    out = xr.Dataset(
        {v.name: (list(axes) + list(v.dims), data[v.name], {"description": v.description}) for v in variables.VARIABLES},
        coords=coords,
        attrs={
            "config": json.dumps(config, sort_keys=True),
            "definitions": variables.definitions(),
            "lrsc_version": lrsc.__version__,
        },
    )
    out["reason"] = out["reason"].astype(str)
    out["status"] = (list(axes), status.astype(str), {"description": STATUS_DEFINITION})
    return out
