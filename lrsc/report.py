"""Summaries of a collected sweep for the book: which LRs are comparable, tables over seeds.

The paper compares models trained to 100% training accuracy, so a learning rate is
*comparable* only when every seed converged and none diverged.
"""
from __future__ import annotations

import pandas as pd
import xarray as xr

METRICS = ("test_acc", "worst_group_acc", "prunability", "act_comp", "act_sparsity", "max_bc_loss_ratio")


def comparable_lrs(ds: xr.Dataset) -> list[float]:
    """LRs at which every seed reached 100% training accuracy and none diverged, ascending."""
    ok = (ds.converged & ~ds.diverged).all("seed")
    return sorted(float(lr) for lr in ds.lr.values[ok.values])


def summary_table(ds: xr.Dataset, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """One row per LR: mean ± std over seeds of each metric, steps, and how many seeds converged/diverged."""
    rows = {}
    comparable = set(comparable_lrs(ds))
    for lr in ds.lr.values:
        sel = ds.sel(lr=lr)
        row = {m: f"{float(sel[m].mean()):.3f} ± {float(sel[m].std()):.3f}" for m in metrics if m in ds}
        row["steps (mean)"] = int(sel.steps.mean())
        row["converged"] = f"{int(sel.converged.sum())}/{sel.sizes['seed']}"
        row["diverged"] = int(sel.diverged.sum())
        row["compared"] = float(lr) in comparable
        rows[float(lr)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("lr")


def endpoints(ds: xr.Dataset, metric: str) -> tuple[float, float, float, float]:
    """``(lr_low, mean_low, lr_high, mean_high)``: seed means of ``metric`` at the smallest and
    largest comparable LR. Raises ValueError when no LR is comparable."""
    lrs = comparable_lrs(ds)
    if not lrs:
        raise ValueError("no learning rate has all seeds converged; raise train.max_steps or change the grid")
    mean = ds[metric].mean("seed")
    return lrs[0], float(mean.sel(lr=lrs[0])), lrs[-1], float(mean.sel(lr=lrs[-1]))


def rank_correlation(ds: xr.Dataset, metric: str) -> float:
    """Spearman correlation between LR and the seed mean of ``metric`` over comparable LRs."""
    lrs = comparable_lrs(ds)
    mean = ds[metric].mean("seed").sel(lr=lrs).to_series()
    # Spearman = Pearson on ranks (pandas' method="spearman" would pull in scipy for this alone).
    return float(pd.Series(lrs, index=mean.index).rank().corr(mean.rank()))
