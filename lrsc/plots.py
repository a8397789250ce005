"""Paper-style figures from collected results: any dataset with an LR-like axis (seeds optional).

Labels and units come from each variable's stored attributes (its ``long_name`` and display
scale: accuracies are drawn in %), axis labels from the declared settings, so a figure needs
no knowledge of the code that made the results.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch
import xarray as xr

from lrsc import settings, variables
from lrsc.datasets import Split
from lrsc.results import scaled
from lrsc.verdicts import compared

# One colour per input region in every figure of the book: core green, spurious red, noise grey.
REGION_COLORS = {"core": "tab:green", "spurious": "tab:red", "noise": "tab:gray"}
VERDICT_COLORS = {"agrees": "tab:blue", "disagrees": "tab:red", "no effect": "tab:olive", "inconclusive": "tab:gray",
                  "untestable": "lightgray"}
INITIALS = {"agrees": "a", "disagrees": "d", "no effect": "n", "inconclusive": "i", "untestable": "u"}


def label(ds: xr.Dataset | None, var: str) -> str:
    """A variable's axis label with its display units, e.g. ``unbiased test accuracy (%)``."""
    attrs = ds[var].attrs if ds is not None and var in ds else {}
    if not attrs and var in variables.REGISTRY:
        attrs = variables.get(var).attrs()
    name = attrs.get("long_name", var)
    return f"{name} ({attrs['display_units']})" if attrs.get("display_units") else name


def _effect_units(var: str) -> str:
    """The units of a registered variable's effects (``points`` for accuracies), for colour bars."""
    return variables.Presentation.of(variables.get(var).attrs()).effect_units or "effect" \
        if var in variables.REGISTRY else "effect"


def _scale(var: str) -> float:
    """The display scale of a registered variable (for tables of runs, which keep no attributes)."""
    return variables.get(var).scale if var in variables.REGISTRY else 1.0


def _with_seed(ds: xr.Dataset) -> xr.Dataset:
    return ds if "seed" in ds.dims else ds.expand_dims(seed=[0])


def _line(ax, ds: xr.Dataset, var: str, label_: str | None = None, color=None, dim: str = "lr") -> None:
    """Seed mean against LR (or another swept ``dim``), a band from the seed min to max; hollow
    markers where not every seed converged, crosses where a seed diverged. A log x axis, linear
    near 0 when the values include 0 (momentum, penalties)."""
    ds = _with_seed(ds)
    x = ds[dim].values
    values = scaled(ds, var)
    mean, lo, hi = values.mean("seed"), values.min("seed"), values.max("seed")
    line, = ax.plot(x, mean, "-", color=color, label=label_)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ok = np.isin(x, compared(ds, dim))
    diverged = ds.diverged.any("seed").values if "diverged" in ds else np.zeros(len(x), bool)
    ax.plot(x[ok], mean.values[ok], "o", color=line.get_color())
    ax.plot(x[~ok & ~diverged], mean.values[~ok & ~diverged], "o", mfc="white", color=line.get_color())
    ax.plot(x[diverged], mean.values[diverged], "x", color="red", ms=8)
    lost = diverged & ~np.isfinite(mean.values)  # every seed diverged: no value to draw, so mark the LR at the bottom
    if lost.any():  # an empty unclipped line would count as an artist at the figure's corner in tight layouts
        ax.plot(x[lost], np.full(lost.sum(), 0.03), "x", color="red", ms=8, transform=ax.get_xaxis_transform(),
                clip_on=False)
    if len(x) > 1 and (x > 0).all():
        ax.set_xscale("log")
    elif len(x) > 1 and (x > 0).any():
        ax.set_xscale("symlog", linthresh=float(x[x > 0].min()))
    # Tick the swept values themselves: log-scale minor labels collide on short ranges.
    ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(settings.label(dim))


def _columns(n: int) -> int:
    """Panels per row that stay legible at the book's text width: 2 x 2 for four, at most 3."""
    return 2 if n in (2, 4) else min(n, 3)


def metrics_vs_lr(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp", "act_sparsity"),
                  title: str = "", dim: str = "lr") -> plt.Figure:
    """One panel per metric against LR (or another swept ``dim``; log scale): seed mean, min–max
    band; four panels as 2 x 2. Any dataset with a ``dim`` dim will do (a ``seed`` dim and the
    ``converged`` / ``diverged`` flags are optional; see :func:`lrsc.collect.to_grid`).

    Filled dots: every seed reached 100% training accuracy (the LRs the paper compares);
    hollow: some seed hit the step cap; red crosses: some seed diverged.
    """
    cols = _columns(len(variables))
    rows = -(-len(variables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(variables):]:
        ax.axis("off")
    for ax, var in zip(axes.flat, variables):
        _line(ax, ds, var, dim=dim)
        ax.set_title(label(ds, var), fontsize=10)
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
            ax.set_title(label(ds, var), fontsize=9)
        row[0].set_ylabel(", ".join(name) if isinstance(name, tuple) else str(name), fontsize=10, fontweight="bold")
    fig.tight_layout()
    return fig


def methods_grid(runs: dict[str, dict[str, xr.Dataset]], variables: tuple[str, ...]) -> plt.Figure:
    """One row per task of ``runs`` (``{task: {method: ds}}``), one column per variable against LR,
    one line per method, each drawn as in :func:`metrics_vs_lr`; the task names the row."""
    fig, axes = plt.subplots(len(runs), len(variables), figsize=(3.3 * len(variables), 2.8 * len(runs)),
                             squeeze=False)
    for row, (task, methods) in zip(axes, runs.items()):
        for ax, var in zip(row, variables):
            for (name, ds), color in zip(methods.items(), plt.cm.tab10.colors):
                _line(ax, ds, var, name, color=color)
            ax.set_title(label(next(iter(methods.values())), var), fontsize=9)
        row[0].set_ylabel(textwrap.fill(task, 24), fontsize=8, fontweight="bold")  # long titles would squeeze the panels
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def nothing(message: str) -> plt.Figure:
    """A small figure that says, in words, why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    return fig


def verdicts(table, title: str = "") -> plt.Figure:
    """Effects with their intervals, one row per judged claim of ``table`` (a
    :func:`lrsc.claims.ledger` table with ``effect``, ``low``, ``high`` and ``verdict``; rows with
    one kind of effect units, top to bottom): the paired effect (dot) and its 90% interval over
    seeds (bar), coloured by the verdict; a dashed line at zero."""
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.32 * max(len(table), 1)))
    y = np.arange(len(table))[::-1]
    for yi, (_, row) in zip(y, table.iterrows()):
        color = VERDICT_COLORS[row.verdict]
        if np.isfinite(row.low):
            ax.plot([row.low, row.high], [yi, yi], "-", color=color, lw=2)
        if np.isfinite(row.effect):
            ax.plot(row.effect, yi, "o", color=color, mfc="white" if row.verdict == "untestable" else color)
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.set_yticks(y, list(table.on), fontsize=8)
    for verdict, color in VERDICT_COLORS.items():
        ax.plot([], [], "o", color=color, label=verdict)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig

def attribution_shares(ds: xr.Dataset, title: str = "") -> plt.Figure:
    """Share of |Integrated Gradients| on core, spurious and noise inputs against LR."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for region, color in REGION_COLORS.items():
        _line(ax, ds, f"attr_{region}", region, color=color)
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
            _line(left, ds, var, label(ds, var), color=color)
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
        ax.scatter(group[x] * _scale(x), group[y] * _scale(y), s=18, label=name)
    ax.set_xlabel(label(None, x))
    ax.set_ylabel(label(None, y))
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def traces(ds: xr.Dataset, lrs: tuple[float, ...], seed: int, variables: tuple[str, ...], smooth: int = 50,
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
        ax.set_title(label(None, var), fontsize=9)
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


def persistence(stay: xr.Dataset, lrs: tuple[float, ...]) -> plt.Figure:
    """Fig. 18 as the paper asks it: of the neurons class-dominant at each snapshot step, the share
    still class-dominant at the end of training (solid), and the same for bias-dominant ones
    (dashed), at each LR of ``lrs`` (:func:`lrsc.mechanism.persistence`; seed mean, steps where a
    seed had stopped left out of its mean)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    colors = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(lrs)))
    for lr, color in zip(lrs, colors):
        for var, style, kind in (("stay_class", "-", "class-dominant"), ("stay_bias", "--", "bias-dominant")):
            mean = stay[var].sel(lr=lr).mean("seed")
            ax.plot(stay.snapshot.values, mean.values, style, marker="o", ms=3, color=color,
                    label=f"lr={lr:g}, {kind} staying so")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("training step t of the snapshot")
    ax.set_ylabel("share still of its kind at the end")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def prune_curves(ds: xr.Dataset, title: str = "", dim: str = "lr") -> plt.Figure:
    """Prunability shown whole: the accuracy kept after pruning, ``P_q`` (the stored
    ``prune_curve``), against the pruning fraction q at the smallest (blue) and largest (red)
    compared value of ``dim``; seed mean, band from the seed min to max (any dataset with a
    ``dim`` dim; seeds optional). Prunability is the mean of a curve over its q."""
    ds = _with_seed(ds)
    ends = compared(ds, dim)
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for value, color in ((ends[0], "tab:blue"), (ends[-1], "tab:red")) if len(ends) > 1 else \
            ((ends[0], "tab:blue"),) if ends else ():
        curve = ds.prune_curve.sel({dim: value})
        q = curve.prune_fraction.values
        ax.plot(q, curve.mean("seed"), "o-", ms=3, color=color, label=f"{dim}={value:g}")
        ax.fill_between(q, curve.min("seed"), curve.max("seed"), color=color, alpha=0.2, linewidth=0)
    ax.axhline(1, color="black", lw=0.5, ls=":")
    ax.set_xlabel("pruning fraction q")
    ax.set_ylabel("P_q = Acc(pruned) / Acc")
    if ends:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

def gain_heatmaps(tables: dict, variables: tuple[str, ...] = ("test_acc", "prunability")) -> plt.Figure:
    """Where the LR effect holds: one row per settings sweep of ``tables`` (``{name: table of
    lrsc.report.settings_frame}``), one heat map per variable. The first setting runs down, the
    others across; a cell is the paired high-LR minus low-LR effect (seed mean, display units),
    written in it with its verdict's initial (:data:`INITIALS`: a agrees, d disagrees, n no effect,
    i inconclusive, u untestable), blue where positive and red where negative (a colour scale
    centred on zero per panel, with its colour bar); a cell whose runs did not all converge is
    hatched."""
    heights = [t.index.get_level_values(0).nunique() for t in tables.values()] or [1]
    fig, axes = plt.subplots(len(tables), len(variables), figsize=(3.6 * len(variables), 0.9 + 0.55 * max(heights)
                                                                    * max(len(tables), 1)), squeeze=False)
    for row, (name, table) in zip(axes, tables.items()):
        first, rest = table.index.names[0], list(table.index.names[1:])
        for ax, var in zip(row, variables):
            def grid(column):
                return table[column].unstack(rest) if rest else table[column].to_frame(" ")
            values, marks, ok = grid((var, "effect")).to_numpy(float), grid((var, "verdict")), grid(("converged", ""))
            limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
            im = ax.imshow(values, cmap="RdBu", vmin=-(limit or 1.0), vmax=limit or 1.0, aspect="auto")
            fig.colorbar(im, ax=ax, shrink=0.8, label=_effect_units(var))
            for (i, j), v in np.ndenumerate(values):
                ax.text(j, i, f"{v:+.3g} ({INITIALS[marks.to_numpy()[i, j]]})", ha="center", va="center", fontsize=8,
                        color="white" if abs(v) > 0.6 * limit else "black")
                if not bool(ok.to_numpy()[i, j]):
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", lw=0))
            ax.set_yticks(range(values.shape[0]), [f"{v:g}" for v in grid((var, "effect")).index], fontsize=8)
            ax.set_ylabel(first)
            cols = [", ".join(f"{v:g}" for v in (c if isinstance(c, tuple) else (c,))) if rest else ""
                    for c in grid((var, "effect")).columns]
            ax.set_xticks(range(len(cols)), cols, fontsize=8)
            ax.set_xlabel(", ".join(rest))
            ax.set_title(f"{name}: {label(None, var)}", fontsize=9)
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
            _line(ax, ds, var, dim=key)
            ax.set_title(label(None, var), fontsize=9)
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
            xa, xb = group[a] * _scale(a), group[b] * _scale(b)
            ax.scatter(xa[done], xb[done], color=color, s=22, label=name)
            ax.scatter(xa[~done], xb[~done], facecolors="none", edgecolors=color, s=22)
    for ax, (a, b) in zip(axes, [(x, y), second]):
        ax.set_xlabel(label(None, a))
        ax.set_ylabel(label(None, b))
    axes[0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def lines_over(panels: dict, variables: tuple[str, ...], dim: str, references: dict | None = None) -> plt.Figure:
    """One panel per variable against ``dim``, one line per entry of ``panels`` (``{name: ds}``,
    dims ``(dim, seed)``); ``references`` (``{name: {variable: value in display units}}``) are
    drawn as horizontal dashed lines (e.g. constant-LR runs beside LR switches)."""
    fig, axes = plt.subplots(1, len(variables), figsize=(3.4 * len(variables), 2.9), squeeze=False)
    for ax, var in zip(axes[0], variables):
        for (name, ds), color in zip(panels.items(), plt.cm.tab10.colors):
            _line(ax, ds, var, name, color=color, dim=dim)
        for (name, values), color in zip((references or {}).items(), plt.cm.Set2.colors):
            ax.axhline(values[var], ls="--", color=color, label=name)
        ax.set_title(label(None, var), fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig

def soup_heatmaps(soups: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability")) -> plt.Figure:
    """Each variable of two-model soups (:func:`lrsc.soup.pair_soups`, seed mean) over the pair
    of LRs averaged; the diagonal is each model alone."""
    fig, axes = plt.subplots(1, len(variables), figsize=(3.6 * len(variables), 3.2), squeeze=False)
    labels = [f"{v:g}" for v in soups.lr_a.values]
    for ax, var in zip(axes[0], variables):
        mean = soups[var].mean("seed").values * _scale(var)
        im = ax.imshow(mean, cmap="viridis", origin="lower")
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("LR of one model")
        ax.set_ylabel("LR of the other")
        ax.set_title(label(None, var), fontsize=9)
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
