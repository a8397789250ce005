"""Result storage: one netCDF file and one status file per run, and the sweep collected
as one xarray.Dataset.

Every file is written to a temporary name and renamed into place, so a reader (or a
resumed sweep) sees either a finished file or none.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import xarray as xr

import lrsc

ENGINE = "h5netcdf"

# Every variable of a collected sweep and its definition (stored in the dataset).
DEFINITIONS = {
    "test_acc": "unbiased test accuracy, fraction in [0, 1]",
    "worst_group_acc": "smallest accuracy over groups (y, b) of the unbiased test set",
    "prunability": "mean over metrics.prune_fractions q of Acc(f_q)/Acc(f), f_q with a fraction q of "
                   "each hidden layer's neurons of smallest L1 weight norm zeroed (unbiased test set)",
    "act_comp": "mean q-compressibility 1 - ||h - h_(k)||/||h||, k = ceil(q d), of penultimate "
                "activations h of metrics.n_act random test inputs",
    "act_sparsity": "mean fraction of exactly-zero penultimate activations over the same inputs",
    "act_pq_index": "mean PQ-index 1 - ||h||_1/(sqrt(d)||h||_2) of the same activations",
    "attr_core": "mean share of |Integrated Gradients| on core inputs (NaN where no regions are known)",
    "attr_spurious": "mean share of |Integrated Gradients| on spurious inputs",
    "attr_noise": "mean share of |Integrated Gradients| on noise inputs",
    "max_bc_loss_ratio": "maximum over training steps of sum(BC losses)/sum(losses) in the minibatch",
    "train_acc": "training accuracy at the last evaluation, fraction in [0, 1]",
    "steps": "SGD steps taken",
    "converged": "reached 100% training accuracy before the step cap",
    "diverged": "ended by a non-finite value, a dead network or a collapse to chance",
    "reason": "why training stopped: converged, step cap, non-finite, dead network, collapse",
    "loss": "per-step minibatch mean cross-entropy (NaN after the run stopped)",
    "bc_loss_ratio": "per-step BC loss ratio (NaN after the run stopped)",
}
TRACES = ("loss", "bc_loss_ratio")
STATUSES = ("pending", "running", "done", "failed", "diverged")
FINISHED = ("done", "diverged")  # the statuses of a run with a result file
STATUS_DEFINITION = ("pending, running, done, failed or diverged; only present when some run has no result, "
                     "whose variables are then NaN (False for flags, 0 steps) and reason is this status")


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


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with _atomic(path) as tmp:
        tmp.write_text(text)


def load(path: str | Path) -> xr.Dataset:
    """Load a stored dataset fully into memory (the file is closed on return)."""
    return xr.load_dataset(path, engine=ENGINE)


def run_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.nc"


def status_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.json"


def write_status(out_dir: str | Path, run_hash: str, record: dict) -> None:
    """Store a run's status record (``{"status": ..., ...}``, JSON) beside its result file."""
    write_text_atomic(json.dumps(record, indent=1), status_path(out_dir, run_hash))


def read_status(out_dir: str | Path, run_hash: str) -> dict:
    """A run's status record; the result file decides whether it is finished.

    ``{"status": "pending"}`` when nothing is stored. A run with a result file is ``done`` or
    ``diverged`` even if its status file was not updated (the process died in between); a
    status ``done`` without a result file (deleted to rerun the run) reads as ``pending``.
    """
    path = status_path(out_dir, run_hash)
    record = json.loads(path.read_text()) if path.exists() else {"status": "pending"}
    result = run_path(out_dir, run_hash)
    if result.exists() and record["status"] not in FINISHED:
        with xr.open_dataset(result, engine=ENGINE) as ds:
            record = {"status": "diverged" if bool(ds["diverged"]) else "done"}
    elif not result.exists() and record["status"] in FINISHED:
        record = {"status": "pending"}
    return record


def collect(runs: Sequence[tuple[dict, Path, str]], axes: dict[str, list], config: dict) -> xr.Dataset:
    """Stack per-run files into one dataset with one dim per grid axis (in grid order).

    runs: ``(axis_values, path, status)`` triples covering the whole grid, where ``status``
    is the run's status for when ``path`` does not exist; axes: ``{dim: values}``. Traces
    are padded with NaN to the longest run along a ``step`` dim. Files are read one at a
    time into the output arrays, so the traces are held in memory once. When some run has
    no result file, a ``status`` variable says why (see ``STATUS_DEFINITION``).
    """
    shape = tuple(len(v) for v in axes.values())
    stored = [(vals, path) for vals, path, _ in runs if path.exists()]
    n_steps, data = 0, {}
    for _, path in stored:  # first pass, headers only: the longest trace and each variable's dtype
        with xr.open_dataset(path, engine=ENGINE) as ds:
            n_steps = max(n_steps, ds.sizes.get("step", 0))
            for name in DEFINITIONS:
                data.setdefault(name, ds[name].dtype)
    for name, dtype in data.items():
        dtype = np.dtype(object if name == "reason" else np.float32 if name in TRACES else dtype)
        fill = np.nan if dtype.kind == "f" else False if dtype.kind == "b" else 0
        data[name] = np.full(shape + ((n_steps,) if name in TRACES else ()), fill, dtype=dtype)
    status = np.empty(shape, dtype=object)
    for vals, path, run_status in runs:
        pos = tuple(axes[dim].index(vals[dim]) for dim in axes)
        if not path.exists():
            status[pos] = run_status
            if "reason" in data:
                data["reason"][pos] = run_status
            continue
        ds = load(path)
        status[pos] = "diverged" if bool(ds["diverged"]) else "done"
        for name in DEFINITIONS:
            value = ds[name].values
            data[name][pos] = value if name not in TRACES else np.pad(
                value.astype(np.float32), (0, n_steps - len(value)), constant_values=np.nan)
    out = xr.Dataset(
        {name: (list(axes) + (["step"] if name in TRACES else []), arr, {"description": DEFINITIONS[name]})
         for name, arr in data.items()},
        coords={dim: values for dim, values in axes.items()},
        attrs={
            "config": json.dumps(config, sort_keys=True),
            "definitions": json.dumps(DEFINITIONS),
            "lrsc_version": lrsc.__version__,
        },
    )
    if "reason" in out:
        out["reason"] = out["reason"].astype(str)
    if len(stored) < len(runs):
        out["status"] = (list(axes), status.astype(str), {"description": STATUS_DEFINITION})
    return out
