"""Paper-style figures from a collected sweep (dims ``lr`` and ``seed``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import xarray as xr

from lrsc.datasets import Split
from lrsc.report import comparable_lrs
from lrsc.variables import VARIABLES

LABELS = {v.name: v.label for v in VARIABLES}  # axis labels, declared with each variable
AXIS_LABELS = {"lr": "learning rate", "batch_size": "batch size", "momentum": "momentum", "l1": "L1 penalty",
               "weight_decay": "L2 penalty (weight decay)", "focal_gamma": "focal loss γ", "asam_rho": "ASAM ρ",
               "schedule_at": "step t of the LR switch", "extra_steps": "extra steps"}

# One colour per input region in every figure of the book: core green, spurious red, noise grey.
REGION_COLORS = {"core": "tab:green", "spurious": "tab:red", "noise": "tab:gray"}


def _line(ax, ds: xr.Dataset, var: str, label: str | None = None, color=None, axis: str = "lr") -> None:
    """Seed mean against LR (or another swept ``axis``), a band from the seed min to max; hollow
    markers where not every seed converged, crosses where a seed diverged. A log x axis, linear
    near 0 when the values include 0 (momentum, penalties)."""
    lr = ds[axis].values
    mean, lo, hi = (ds[var].mean("seed"), ds[var].min("seed"), ds[var].max("seed"))
    line, = ax.plot(lr, mean, "-", color=color, label=label)
    ax.fill_between(lr, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ok = np.isin(lr, comparable_lrs(ds, axis))
    diverged = ds.diverged.any("seed").values
    ax.plot(lr[ok], mean.values[ok], "o", color=line.get_color())
    ax.plot(lr[~ok & ~diverged], mean.values[~ok & ~diverged], "o", mfc="white", color=line.get_color())
    ax.plot(lr[diverged], mean.values[diverged], "x", color="red", ms=8)
    if (lr > 0).all():
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=float(lr[lr > 0].min()))
    # Tick the swept values themselves: log-scale minor labels collide on short ranges.
    ax.set_xticks(lr, [f"{v:g}" for v in lr], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(AXIS_LABELS.get(axis, axis))


def _columns(n: int) -> int:
    """Panels per row that stay legible at the book's text width: 2 x 2 for four, at most 3."""
    return 2 if n in (2, 4) else min(n, 3)


def metrics_vs_lr(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp", "act_sparsity"),
                  title: str = "") -> plt.Figure:
    """One panel per metric against LR (log scale): seed mean, min–max band; four panels as 2 x 2.

    Filled dots: every seed reached 100% training accuracy (the LRs the paper compares);
    hollow: some seed hit the step cap; red crosses: some seed diverged.
    """
    cols = _columns(len(variables))
    rows = -(-len(variables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(variables):]:
        ax.axis("off")
    for ax, var in zip(axes.flat, variables):
        _line(ax, ds, var)
        ax.set_title(LABELS.get(var, var), fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def metrics_grid(results: dict, variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> plt.Figure:
    """One row per sweep of ``results`` (``{name: ds}``, a tuple name is joined with ", "), one
    column per metric against LR, drawn as in :func:`metrics_vs_lr`; the sweep names the row."""
    fig, axes = plt.subplots(len(results), len(variables), figsize=(3.3 * len(variables), 2.6 * len(results)),
                             squeeze=False)
    for row, (name, ds) in zip(axes, results.items()):
        for ax, var in zip(row, variables):
            _line(ax, ds, var)
            ax.set_title(LABELS.get(var, var), fontsize=9)
        row[0].set_ylabel(", ".join(name) if isinstance(name, tuple) else str(name), fontsize=10, fontweight="bold")
    fig.tight_layout()
    return fig


def headline(table) -> plt.Figure:
    """The book's front-page figure from :func:`lrsc.report.headline`: per sweep (one row of
    the table, top to bottom), unbiased accuracy and prunability at the smallest compared LR
    (hollow dot) and the largest (filled dot), joined by an arrow that is blue where the rank
    correlation with LR is positive and orange otherwise."""
    names = [f"{row[('', 'dataset')]}, {row[('', 'model')]}" for _, row in table.iterrows()]
    fig, axes = plt.subplots(1, 2, figsize=(8, 0.5 + 0.42 * max(len(table), 1)), sharey=True, squeeze=False)
    y = np.arange(len(table))[::-1]
    for ax, quantity in zip(axes[0], ("accuracy (%)", "prunability")):
        lo, hi, rank = (table[(quantity, c)].to_numpy(float) for c in ("low LR", "high LR", "rank"))
        for yi, a, b, r in zip(y, lo, hi, rank):
            color = "tab:blue" if r > 0 else "tab:orange"
            if np.isfinite(a) and np.isfinite(b):
                ax.annotate("", xy=(b, yi), xytext=(a, yi),
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5, "shrinkA": 4, "shrinkB": 4})
            ax.plot(a, yi, "o", mfc="white", color=color)
            ax.plot(b, yi, "o", color=color)
        ax.set_title("unbiased test accuracy (%)" if quantity.startswith("accuracy") else "prunability", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15, y=0.3 if len(table) < 3 else 0.1)
    axes[0, 0].set_yticks(y, names, fontsize=9)
    fig.tight_layout()
    return fig


def attribution_shares(ds: xr.Dataset, title: str = "") -> plt.Figure:
    """Share of |Integrated Gradients| on core, spurious and noise inputs against LR."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for region, color in REGION_COLORS.items():
        _line(ax, ds, f"attr_{region}", label=region, color=color)
    ax.set_ylabel("share of |attribution|")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
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


def sample_rows(rows: dict[str, Split], n: int = 8) -> plt.Figure:
    """One row of the first ``n`` images per entry of ``rows`` (``{row label: split}``), each
    captioned with its class ``y`` and bias ``b``; bias-conflicting samples (``b != y``) get a
    red frame and a red caption, as in :func:`sample_grid`."""
    fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n, 1.45 * len(rows)), squeeze=False)
    for axrow, (label, split) in zip(axes, rows.items()):
        for col, ax in enumerate(axrow):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(split):
                ax.axis("off")
                continue
            y, b = int(split.y[col]), int(split.b[col])
            conflicting = y != b
            ax.imshow(split.x[col].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            ax.set_title(f"y={y} b={b}", fontsize=7, color="red" if conflicting else "black")
            for spine in ax.spines.values():
                spine.set_visible(conflicting)
                spine.set_color("red")
                spine.set_linewidth(2)
        axrow[0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def selectivity_vs_lr(results: dict[str, xr.Dataset]) -> plt.Figure:
    """One row per sweep of ``results`` (``{name: ds}``). Left: class selectivity (CSI), bias
    selectivity (BSI) and the CSI with shuffled labels against LR; right: class separation R².
    Seed mean, band from seed min to max, markers as in :func:`metrics_vs_lr`."""
    fig, axes = plt.subplots(len(results), 2, figsize=(8, 2.8 * len(results)), squeeze=False)
    for (name, ds), (left, right) in zip(results.items(), axes):
        for var, color in (("csi", "tab:green"), ("bsi", "tab:red"), ("csi_shuffled", "tab:gray")):
            _line(left, ds, var, label=LABELS.get(var, var), color=color)
        left.set_ylabel("selectivity index")
        left.set_title(name, fontsize=9)
        _line(right, ds, "class_sep", color="tab:blue")
        right.set_ylabel("class separation R²")
        right.set_title(name, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def runs_scatter(runs, x: str = "max_bc_loss_ratio", y: str = "test_acc", title: str = "") -> plt.Figure:
    """One point per run (a table with columns ``sweep``, ``x``, ``y``), a colour per sweep."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, group in runs.groupby("sweep", sort=False):
        ax.scatter(group[x], group[y], s=18, label=name)
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def dynamics(ds: xr.Dataset, lrs: tuple[float, ...], seed: int, variables: tuple[str, ...], smooth: int = 50,
             cols: int = 3) -> plt.Figure:
    """Per-step traces ``variables`` of one seed at each LR of ``lrs``, one panel per variable
    (running mean over ``smooth`` records; the x axis is the training step)."""
    rows = -(-len(variables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(variables):]:
        ax.axis("off")
    colors = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(lrs)))
    for ax, var in zip(axes.flat, variables):
        for lr, color in zip(lrs, colors):
            trace = ds[var].sel(lr=lr, seed=seed)
            trace = trace.sel(step=trace.step[trace.notnull()]) if trace.notnull().any() else trace
            values = trace.values
            if len(values) >= smooth:  # a running mean that skips NaN (records without BC samples)
                ok = np.isfinite(values)
                kernel = np.ones(smooth)
                values = np.convolve(np.where(ok, values, 0), kernel, "same") / np.maximum(
                    np.convolve(ok, kernel, "same"), 1)
            ax.plot(trace.step.values, values, color=color, label=f"lr={lr:g}")
        ax.set_title(LABELS.get(var, var), fontsize=9)
        ax.set_xlabel("step")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def logit_scaling(table, title: str = "") -> plt.Figure:
    """The shares of :func:`lrsc.mechanism.logit_scaling` against the logit scale alpha (log axis)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for column, color in (("bc_loss_share", "tab:red"), ("wrong_loss_share", "black"),
                          ("bc_grad_share", "tab:orange"), ("spurious_grad_share", "tab:purple")):
        if column in table and table[column].notnull().any():
            ax.plot(table.index, table[column], "o-", ms=3, color=color, label=column.replace("_", " "))
    ax.set_xscale("log")
    ax.set_xlabel("logit scale alpha")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def dominance(dom: xr.Dataset, lrs: tuple[float, ...]) -> plt.Figure:
    """Fig. 18: the fraction of class-dominant (CSI > BSI, solid) and bias-dominant (dashed)
    neurons against the training step at each LR of ``lrs``; seed mean, steps where a seed had
    stopped left out of its mean."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    colors = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(lrs)))
    for lr, color in zip(lrs, colors):
        for var, style in (("class_dominant", "-"), ("bias_dominant", "--")):
            mean = dom[var].sel(lr=lr).mean("seed")
            ax.plot(dom.snapshot.values, mean.values, style, marker="o", ms=3, color=color,
                    label=f"lr={lr:g}, {var.replace('_', '-')}")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of firing neurons")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def prune_curves(ds: xr.Dataset, title: str = "") -> plt.Figure:
    """Prunability shown whole: the accuracy kept after pruning, ``P_q`` (the stored
    ``prune_curve``), against the pruning fraction q at the smallest (blue) and largest (red)
    compared LR; seed mean, band from the seed min to max. Prunability is the mean of a curve
    over its q."""
    lrs = comparable_lrs(ds)
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for lr, color in ((lrs[0], "tab:blue"), (lrs[-1], "tab:red")) if lrs else ():
        curve = ds.prune_curve.sel(lr=lr)
        q = curve.prune_fraction.values
        line, = ax.plot(q, curve.mean("seed"), "o-", ms=3, color=color, label=f"lr={lr:g}")
        ax.fill_between(q, curve.min("seed"), curve.max("seed"), color=color, alpha=0.2, linewidth=0)
    ax.axhline(1, color="black", lw=0.5, ls=":")
    ax.set_xlabel("pruning fraction q")
    ax.set_ylabel("P_q = Acc(pruned) / Acc")
    if lrs:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def gain_heatmaps(tables: dict, metrics: tuple[tuple[str, str], ...] = (
        ("test_acc gain", "accuracy gain (points)"), ("prunability gain", "prunability gain"))) -> plt.Figure:
    """Where the LR effect holds: one row per settings sweep of ``tables`` (``{name: table of
    lrsc.report.gain_table}``), one heat map per ``(column, title)`` of ``metrics``. The first
    index level (a data setting such as rho) runs down, the others across; a cell is the
    high-LR minus low-LR value, written in it, blue where positive and red where negative
    (a colour scale centred on zero per panel); a cell whose runs did not all converge is
    hatched."""
    fig, axes = plt.subplots(len(tables), len(metrics), figsize=(3.6 * len(metrics), 0.9 + 0.55 * max(
        [t.index.get_level_values(0).nunique() for t in tables.values()] or [1]) * max(len(tables), 1)),
        squeeze=False)
    for row, (name, table) in zip(axes, tables.items()):
        first = table.index.names[0]
        rest = table.index.names[1:]
        for ax, (column, label) in zip(row, metrics):
            grid = table[column].unstack(rest) if rest else table[column].to_frame(" ")
            ok = table["all converged"].unstack(rest) if rest else table["all converged"].to_frame(" ")
            values = grid.to_numpy(float)
            limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
            ax.imshow(values, cmap="RdBu", vmin=-(limit or 1.0), vmax=limit or 1.0, aspect="auto")
            for (i, j), v in np.ndenumerate(values):
                ax.text(j, i, f"{v:+.3g}", ha="center", va="center", fontsize=8,
                        color="white" if abs(v) > 0.6 * limit else "black")
                if not bool(ok.to_numpy()[i, j]):
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", lw=0))
            ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index], fontsize=8)
            ax.set_ylabel(first)
            cols = [", ".join(f"{v:g}" for v in (c if isinstance(c, tuple) else (c,))) if rest else "" for c in grid.columns]
            ax.set_xticks(range(len(cols)), cols, fontsize=8)
            ax.set_xlabel(", ".join(rest))
            ax.set_title(f"{name}: {label}", fontsize=9)
    fig.tight_layout()
    return fig


def hyperparameter_grid(results: dict, variables: tuple[str, ...] = ("test_acc", "prunability", "csi"),
                        names: dict | None = None) -> plt.Figure:
    """Fig. 6: one row per swept setting of ``results`` (``{key: ds}``, dims ``(key, seed)``; the
    key is the axis), one column per variable against that setting's values."""
    fig, axes = plt.subplots(len(results), len(variables), figsize=(3.1 * len(variables), 2.2 * len(results)),
                             squeeze=False)
    for row, (key, ds) in zip(axes, results.items()):
        for ax, var in zip(row, variables):
            _line(ax, ds, var, axis=key)
            ax.set_title(LABELS.get(var, var), fontsize=9)
        row[0].set_ylabel((names or {}).get(key, key), fontsize=10, fontweight="bold")
    fig.tight_layout()
    return fig


def hyperparameter_scatter(runs, x: str = "test_acc", y: str = "prunability",
                           second: tuple[str, str] = ("max_bc_loss_ratio", "test_acc")) -> plt.Figure:
    """Every run (rows of :func:`lrsc.hyper.runs_frame`) placed by ``x`` and ``y`` (left) and by
    ``second`` (right), one colour per varied setting; hollow where the run did not converge."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (name, group), color in zip(runs.groupby("varied", sort=False), plt.cm.tab10.colors):
        for ax, (a, b) in zip(axes, [(x, y), second]):
            done = group.converged & ~group.diverged
            ax.scatter(group[a][done], group[b][done], color=color, s=22, label=name)
            ax.scatter(group[a][~done], group[b][~done], facecolors="none", edgecolors=color, s=22)
    for ax, (a, b) in zip(axes, [(x, y), second]):
        ax.set_xlabel(LABELS.get(a, a))
        ax.set_ylabel(LABELS.get(b, b))
    axes[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def lines_over(panels: dict, variables: tuple[str, ...], axis: str, references: dict | None = None) -> plt.Figure:
    """One panel per variable against ``axis``, one line per entry of ``panels`` (``{label: ds}``,
    dims ``(axis, seed)``); ``references`` (``{label: {variable: value}}``) are drawn as
    horizontal dashed lines (e.g. constant-LR runs beside LR switches)."""
    fig, axes = plt.subplots(1, len(variables), figsize=(3.4 * len(variables), 2.9), squeeze=False)
    for ax, var in zip(axes[0], variables):
        for (label, ds), color in zip(panels.items(), plt.cm.tab10.colors):
            _line(ax, ds, var, label=label, color=color, axis=axis)
        for (label, values), color in zip((references or {}).items(), plt.cm.Set2.colors):
            ax.axhline(values[var], ls="--", color=color, label=label)
        ax.set_title(LABELS.get(var, var), fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def soup_heatmaps(soups: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability")) -> plt.Figure:
    """Each variable of two-model soups (:func:`lrsc.soup.pair_soups`, seed mean) over the pair
    of LRs averaged; the diagonal is each model alone."""
    fig, axes = plt.subplots(1, len(variables), figsize=(3.6 * len(variables), 3.2), squeeze=False)
    labels = [f"{v:g}" for v in soups.lr_a.values]
    for ax, var in zip(axes[0], variables):
        mean = soups[var].mean("seed").values
        im = ax.imshow(mean, cmap="viridis", origin="lower")
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("LR of one model")
        ax.set_ylabel("LR of the other")
        ax.set_title(LABELS.get(var, var), fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def attribution_maps(images: torch.Tensor, maps: dict[str, torch.Tensor]) -> plt.Figure:
    """One row per image of ``images`` ``(n, 3, H, W)`` in [0, 1]: the image, then for each entry
    of ``maps`` (``{label: attributions of the same shape}``) its |attribution| summed over the
    colour channels, each map scaled to its own maximum. With no image, one row saying so."""
    n = len(images)
    fig, axes = plt.subplots(max(n, 1), 1 + len(maps), figsize=(1.9 * (1 + len(maps)), 1.9 * max(n, 1)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if not n:
        axes[0][0].set_title("no test image met the selection", fontsize=9)
    for i in range(n):
        axes[i][0].imshow(images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        for ax, (label, attr) in zip(axes[i][1:], maps.items()):
            heat = attr[i].abs().sum(0).cpu().numpy()
            ax.imshow(heat / max(heat.max(), 1e-12), cmap="inferno")
            if i == 0:
                ax.set_title(label, fontsize=9)
    axes[0][0].set_title(axes[0][0].get_title() or "image", fontsize=9)
    fig.tight_layout()
    return fig
