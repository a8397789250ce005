"""Paper-style figures from a collected sweep (dims ``lr`` and ``seed``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from lrsc.datasets import Split
from lrsc.report import comparable_lrs

LABELS = {
    "test_acc": "unbiased test accuracy",
    "worst_group_acc": "worst-group accuracy",
    "prunability": "prunability",
    "act_comp": "activation compressibility",
    "act_sparsity": "activation sparsity",
    "act_pq_index": "activation PQ-index",
    "max_bc_loss_ratio": "max BC loss ratio",
}


def _line(ax, ds: xr.Dataset, var: str, label: str | None = None, color=None) -> None:
    """Seed mean against LR, a band from the seed min to max; hollow markers where not every
    seed converged, crosses where a seed diverged."""
    lr = ds.lr.values
    mean, lo, hi = (ds[var].mean("seed"), ds[var].min("seed"), ds[var].max("seed"))
    line, = ax.plot(lr, mean, "-", color=color, label=label)
    ax.fill_between(lr, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ok = np.isin(lr, comparable_lrs(ds))
    diverged = ds.diverged.any("seed").values
    ax.plot(lr[ok], mean.values[ok], "o", color=line.get_color())
    ax.plot(lr[~ok & ~diverged], mean.values[~ok & ~diverged], "o", mfc="white", color=line.get_color())
    ax.plot(lr[diverged], mean.values[diverged], "x", color="red", ms=8)
    ax.set_xscale("log")
    # Tick the swept LRs themselves: log-scale minor labels collide on short LR ranges.
    ax.set_xticks(lr, [f"{v:g}" for v in lr], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("learning rate")


def metrics_vs_lr(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp", "act_sparsity"),
                  title: str = "") -> plt.Figure:
    """One panel per metric against LR (log scale): seed mean, min–max band.

    Filled dots: every seed reached 100% training accuracy (the LRs the paper compares);
    hollow: some seed hit the step cap; red crosses: some seed diverged.
    """
    fig, axes = plt.subplots(1, len(variables), figsize=(3.2 * len(variables), 3), squeeze=False)
    for ax, var in zip(axes[0], variables):
        _line(ax, ds, var)
        ax.set_title(LABELS.get(var, var))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def attribution_shares(ds: xr.Dataset, title: str = "") -> plt.Figure:
    """Share of |Integrated Gradients| on core, spurious and noise inputs against LR."""
    fig, ax = plt.subplots(figsize=(4.2, 3))
    for region, color in (("core", "tab:green"), ("spurious", "tab:red"), ("noise", "tab:gray")):
        _line(ax, ds, f"attr_{region}", label=region, color=color)
    ax.set_ylabel("share of |attribution|")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig


def training_curves(ds: xr.Dataset, var: str = "bc_loss_ratio", smooth: int = 50, seed: int | None = None) -> plt.Figure:
    """Per-step trace ``var`` (running mean over ``smooth`` steps) of each LR for one seed."""
    seed = int(ds.seed.values[0]) if seed is None else seed
    fig, ax = plt.subplots(figsize=(5, 3))
    cmap = plt.get_cmap("viridis")
    for i, lr in enumerate(ds.lr.values):
        y = ds[var].sel(lr=lr, seed=seed).dropna("step").values
        if len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(y, color=cmap(i / max(1, ds.sizes["lr"] - 1)), label=f"lr={lr:g}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{var} (running mean of {smooth})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sample_grid(split: Split, n: int = 16, by_bias: bool = False, bias_names: list[str] | None = None,
                cols: int = 8, title: str = "") -> plt.Figure:
    """Images of ``split`` with their class ``y`` and bias ``b``; bias-conflicting samples
    (``b != y``) get a red frame and a red caption.

    ``by_bias``: show the first sample of each bias value ``0 .. num_bias - 1`` instead of
    the first ``n`` samples (e.g. one image per corruption of Corrupted CIFAR-10);
    ``bias_names``: names of the bias values, shown in place of the number ``b``.
    """
    if by_bias:
        idx = [int((split.b == k).nonzero()[0]) for k in range(split.num_bias) if (split.b == k).any()]
    else:
        idx = list(range(min(n, len(split))))
    rows = -(-len(idx) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat[len(idx):]:
        ax.axis("off")  # the empty cells of the last row
    for ax, i in zip(axes.flat, idx):
        y, b = int(split.y[i]), int(split.b[i])
        conflicting = y != b
        ax.imshow(split.x[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        ax.set_title(f"y={y} b={bias_names[b] if bias_names else b}", fontsize=7,
                     color="red" if conflicting else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # the frame marks BC samples
            spine.set_visible(conflicting)
            spine.set_color("red")
            spine.set_linewidth(2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
