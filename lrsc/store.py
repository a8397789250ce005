"""Result storage: one netCDF file per run, and the sweep collected as one xarray.Dataset.

Every file is written to a temporary name and renamed into place, so a reader (or a
resumed sweep) sees either a finished file or none.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

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


def write_atomic(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``ds`` as netCDF to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | Path) -> xr.Dataset:
    """Load a stored dataset fully into memory (the file is closed on return)."""
    return xr.load_dataset(path, engine=ENGINE)


def run_path(out_dir: str | Path, run_hash: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_hash}.nc"


def collect(runs: Iterable[tuple[dict, Path]], axes: dict[str, list], config: dict) -> xr.Dataset:
    """Stack per-run files into one dataset with one dim per grid axis (in grid order).

    runs: ``(axis_values, path)`` pairs covering the whole grid; axes: ``{dim: values}``.
    Traces are padded with NaN to the longest run along a ``step`` dim.
    """
    shape = tuple(len(v) for v in axes.values())
    loaded = [(vals, load(p)) for vals, p in runs]
    n_steps = max(ds.sizes.get("step", 0) for _, ds in loaded)
    data: dict[str, np.ndarray] = {}
    for vals, ds in loaded:
        pos = tuple(axes[dim].index(vals[dim]) for dim in axes)
        for name in DEFINITIONS:
            value = ds[name].values
            if name in TRACES:
                value = np.pad(value.astype(np.float32), (0, n_steps - len(value)), constant_values=np.nan)
            if name not in data:
                data[name] = np.empty(shape + value.shape, dtype=value.dtype if name != "reason" else object)
            data[name][pos] = value
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
    out["reason"] = out["reason"].astype(str)
    return out
