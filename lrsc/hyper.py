"""Large LR against other hyperparameters and regularisers (paper Fig. 6, Fig. 9, Tab. 2).

Each hyperparameter is swept over its range at one fixed small LR, beside the LR sweep
itself; :func:`sweep_each` runs those sweeps, :func:`ranges_table` gives Tab. 2 (the min
and max of each variable over a hyperparameter's range) and :func:`effects_table` says,
with :func:`lrsc.report.trend` along each hyperparameter's own axis, whether it raises
robustness and compressibility together.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import report
from lrsc.sweep import run_sweep

# The direction in which each hyperparameter is expected to act as a larger LR does: a
# smaller batch means noisier SGD, as a larger LR does; the rest are regularisers that grow.
DIRECTION = {"lr": 1, "batch_size": -1, "momentum": 1, "l1": 1, "weight_decay": 1, "focal_gamma": 1, "asam_rho": 1}
NAMES = {"lr": "learning rate", "batch_size": "batch size", "momentum": "momentum", "l1": "L1",
         "weight_decay": "L2", "focal_gamma": "focal loss", "asam_rho": "ASAM", "lr+l2": "high LR + L2"}

# The swept axis of a results key that is not itself a train key.
AXES = {"lr+l2": "weight_decay"}

# The paper's Tab. 2 (supplement D.3), Colored MNIST with ResNet18: the min. and max. of each
# variable over each hyperparameter's range, as printed (accuracy in %). Our quick profile sweeps
# another dataset and model, so these are quoted for scale and direction only.
PAPER_TAB2_COLUMNS = ("range", "test_acc", "prunability", "csi")
PAPER_TAB2 = {
    "lr": ((0.001, 0.15), (72.297, 92.203), (0.262, 0.8), (0.441, 0.644)),
    "lr+l2": ((1e-05, 0.001), (92.183, 94.25), (0.79, 0.87), (0.651, 0.848)),
    "batch_size": ((0.01, 0.3333), (68.363, 90.303), (0.253, 0.661), (0.383, 0.587)),
    "momentum": ((0.1, 0.99), (68.38, 91.197), (0.256, 0.748), (0.387, 0.633)),
    "l1": ((1e-05, 0.001), (72.887, 90.347), (0.275, 0.864), (0.458, 0.859)),
    "weight_decay": ((0.0001, 0.05), (71.727, 89.687), (0.263, 0.76), (0.432, 0.873)),
    "focal_gamma": ((0.001, 25.0), (68.203, 91.8), (0.254, 0.645), (0.377, 0.626)),
    "asam_rho": ((0.01, 10.0), (68.723, 90.977), (0.256, 0.522), (0.38, 0.508)),
}


def sweep_each(params: str | Path, lr: float, ranges: dict[str, list], out_dir: str | Path,
               overrides: dict | None = None, seeds: list[int] | None = None,
               progress: bool = False) -> dict[str, xr.Dataset]:
    """The LR sweep of ``params`` (its own grid) and, for each hyperparameter of ``ranges``
    (``{train key: values}``, e.g. ``{"momentum": [0, 0.5, 0.9]}``), the same sweep at the single
    ``lr`` with that key as an axis. Each is stored under ``out_dir/hp_<key>`` (the LR sweep
    under ``out_dir/<params stem>``, shared with any chapter that runs it).

    ``seeds``: the seeds of the hyperparameter sweeps (default: the LR sweep's).
    Returns ``{key: ds}`` with ``"lr"`` first; ``ds`` has dims ``(key, seed)`` (the LR sweep
    ``(lr, seed)``) and every stored variable.
    """
    params, out_dir = Path(params), Path(out_dir)
    overrides = dict(overrides or {})
    results = {"lr": run_sweep(params, out_dir / params.stem, overrides, progress=progress)}
    seeds = {"grid.seed": seeds} if seeds else {}
    for key, values in ranges.items():
        ds = run_sweep(params, out_dir / f"hp_{key}", {**overrides, **seeds, "grid.lr": [lr], f"grid.{key}": values},
                       progress=progress)
        results[key] = ds.isel(lr=0)
    return results


def ranges_table(results: dict[str, xr.Dataset], variables: tuple[str, ...] = ("test_acc", "prunability", "csi"),
                 paper: dict = PAPER_TAB2) -> pd.DataFrame:
    """Tab. 2: per hyperparameter of ``results`` (``{key: ds}``, dims ``(key, seed)``), its swept
    range and the min and max of each variable's seed mean over the compared values (every
    seed converged), each independently, ours beside the paper's; accuracy in %."""
    rows = {}
    for key, ds in results.items():
        axis = AXES.get(key, key)
        values = report.comparable_lrs(ds, axis)
        mean = ds[list(variables)].mean("seed").sel({axis: values})
        row = {("range", "ours"): f"{min(values):g} – {max(values):g}" if values else "none compared"}
        if key in paper:
            row[("range", "paper")] = "{:g} – {:g}".format(*paper[key][0])
        for var in variables:
            scale = 100 if var.endswith("acc") else 1
            v = mean[var].values * scale
            row[(var, "min")], row[(var, "max")] = (np.nanmin(v), np.nanmax(v)) if len(v) else (np.nan, np.nan)
            if key in paper and var in PAPER_TAB2_COLUMNS:
                lo, hi = paper[key][PAPER_TAB2_COLUMNS.index(var)]
                row[(var, "paper min")], row[(var, "paper max")] = lo, hi
        rows[NAMES.get(key, key)] = row
    return report.grouped_table(rows)


def effects_table(results: dict[str, xr.Dataset],
                  variables: tuple[str, ...] = ("test_acc", "prunability", "csi")) -> pd.DataFrame:
    """Per hyperparameter, how each variable moves as the hyperparameter moves in its
    :data:`DIRECTION` (increasing for a key not listed there; the robust
    :func:`lrsc.report.trend` along its own axis, signed so that +1 is "improves"), the effect between the halves of its range, and ``both``: whether
    unbiased accuracy and prunability both improve clearly. Accuracy effects in points."""
    rows = {}
    for key, ds in results.items():
        sign = DIRECTION.get(key, 1)
        row = {}
        for var in variables:
            t = report.trend(ds, var, 100 if var.endswith("acc") else 1, axis=key)
            row[(var, "effect")] = sign * t.effect
            row[(var, "seed sd")] = t.spread
            row[(var, "direction")] = {1: "improves", -1: "worsens", 0: "unclear"}[sign * t.direction]
        row[("both", "")] = row[("test_acc", "direction")] == row[("prunability", "direction")] == "improves"
        rows[NAMES.get(key, key)] = row
    return report.grouped_table(rows)


def runs_frame(results: dict[str, xr.Dataset],
               variables: tuple[str, ...] = ("test_acc", "prunability", "max_bc_loss_ratio")) -> pd.DataFrame:
    """Every run of ``results`` as a row: ``varied`` (the hyperparameter's name), ``value``,
    ``seed``, ``converged`` and ``variables``."""
    frames = []
    for key, ds in results.items():
        axis = AXES.get(key, key)
        frame = ds[[*variables, "converged", "diverged"]].to_dataframe().reset_index()
        frames.append(frame.rename(columns={axis: "value"}).assign(varied=NAMES.get(key, key))
                      [["varied", "value", "seed", "converged", "diverged", *variables]])
    return pd.concat(frames, ignore_index=True)
