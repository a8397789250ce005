"""The paper's mechanism, measured: BC samples' share of the loss, logit scaling (Prop. 1-2),
and class- against bias-dominant neurons over training (Fig. 12, 13, 18).

The paper's formulas were lost in extraction; SPEC §6 restates them as we reconstructed
them from its prose, and so does the book's mechanism chapter.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from lrsc import datasets, store
from lrsc.config import run_hash
from lrsc.report import comparable_lrs


def runs_table(results: dict[str, xr.Dataset], x: str = "max_bc_loss_ratio", y: str = "test_acc") -> pd.DataFrame:
    """Every converged, not diverged run of the sweeps ``{name: ds}`` (dims ``lr``, ``seed``) as a
    row: ``sweep``, ``lr``, ``seed``, ``x`` and ``y``."""
    rows = []
    for name, ds in results.items():
        frame = ds[[x, y, "converged", "diverged"]].to_dataframe().reset_index()
        frame = frame[frame.converged & ~frame.diverged]
        rows.append(frame.assign(sweep=name)[["sweep", "lr", "seed", x, y]])
    return pd.concat(rows, ignore_index=True)


def correlations(runs: pd.DataFrame, x: str = "max_bc_loss_ratio", y: str = "test_acc") -> pd.DataFrame:
    """Pearson and Spearman correlation of ``x`` and ``y`` over the runs of each sweep, and over
    all runs with each sweep's values centred (so that sweeps at different accuracy levels do
    not make a correlation of their own); NaN with fewer than three runs."""
    out = {}
    groups = list(runs.groupby("sweep", sort=False))
    centred = pd.concat([g.assign(**{c: g[c] - g[c].mean() for c in (x, y)}) for _, g in groups])
    for name, g in [*groups, ("all sweeps (centred per sweep)", centred)]:
        enough = len(g) >= 3 and g[x].nunique() > 1 and g[y].nunique() > 1
        out[name] = {"runs": len(g),
                     "pearson": g[x].corr(g[y]) if enough else np.nan,
                     "spearman": g[x].rank().corr(g[y].rank()) if enough else np.nan}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("sweep")


def load_model(out_dir: str | Path, device: str = "cpu", **point) -> tuple[nn.Module, dict]:
    """The trained model of the run at grid ``point`` (e.g. ``lr=0.1, seed=0``) of the sweep stored
    in ``out_dir`` (its weights ``runs/<hash>.pt``), in eval mode, and the run's config."""
    from lrsc.sweep import axes, expand, init_model, load_data, read_config

    cfg = read_config(out_dir)
    dims = axes(cfg)
    for values, run in zip(itertools.product(*dims.values()), expand(cfg)):
        if all(dict(zip(dims, values))[k] == v for k, v in point.items()):
            model = init_model(run, load_data(run, torch.device(device))[0])
            model.load_state_dict(torch.load(store.weights_path(out_dir, run_hash(run)), map_location=device))
            return model.eval(), run
    raise ValueError(f"no run of the sweep in {out_dir} is at {point}")


def with_bc_fraction(split: datasets.Split, fraction: float, n: int, seed: int = 0) -> datasets.Split:
    """``n`` samples of ``split`` of which a share ``fraction`` (rounded) are bias-conflicting,
    drawn with ``seed``: a minibatch as training sees it, from held-out data."""
    g = torch.Generator().manual_seed(seed)
    bc, ba = split.conflicting.nonzero()[:, 0].cpu(), (~split.conflicting).nonzero()[:, 0].cpu()
    n_bc = min(len(bc), max(1, round(fraction * n)))
    pick = torch.cat([bc[torch.randperm(len(bc), generator=g)[:n_bc]],
                      ba[torch.randperm(len(ba), generator=g)[:n - n_bc]]]).to(split.x.device)
    return datasets.Split(split.x[pick], split.y[pick], split.b[pick], split.num_classes, split.num_bias,
                          split.regions)


def logit_scaling(model: nn.Module, split: datasets.Split, alphas: Sequence[float]) -> pd.DataFrame:
    """Prop. 1-2 checked numerically: scale ``model``'s logits by each ``alpha`` and measure, over
    the samples of ``split`` (one batch), per alpha:

    - ``bc_loss_share``: the BC samples' share of the summed cross-entropy (Prop. 1);
    - ``wrong_loss_share``: the share carried by the samples the model gets wrong;
    - ``spurious_grad_share``: the share of the squared gradient of the summed loss with
      respect to the inputs that falls on the spurious inputs, against the core ones
      (Prop. 2; ``split.regions`` must name ``core`` and ``spurious``);
    - ``bc_grad_share``: the BC samples' share of the squared norm of the loss gradient with
      respect to the logits (each sample's "vote" in the update).
    """
    x = split.x.detach().clone().requires_grad_()
    bc = split.conflicting
    rows = []
    for alpha in alphas:
        logits = alpha * model(x)
        losses = F.cross_entropy(logits, split.y, reduction="none")
        wrong = logits.argmax(1) != split.y
        grad_x, grad_z = torch.autograd.grad(losses.sum(), (x, logits), retain_graph=False)
        g2 = grad_x.pow(2).flatten(1)
        spu = g2[:, split.regions["spurious"].flatten()].sum().item() if "spurious" in split.regions else np.nan
        core = g2[:, split.regions["core"].flatten()].sum().item() if "core" in split.regions else np.nan
        z2 = grad_z.pow(2).sum(1)
        total = losses.sum().item()
        rows.append({"alpha": alpha, "bc_loss_share": losses[bc].sum().item() / total,
                     "wrong_loss_share": losses[wrong].sum().item() / total,
                     "spurious_grad_share": spu / (spu + core),
                     "bc_grad_share": (z2[bc].sum() / z2.sum()).item()})
    return pd.DataFrame(rows).set_index("alpha")


def neuron_dominance(ds: xr.Dataset) -> xr.Dataset:
    """Fig. 18: per snapshot step, LR and seed, the fraction of the penultimate neurons that
    fire (finite CSI) which are class-dominant (CSI > BSI) and bias-dominant (BSI > CSI).
    NaN where the run had stopped before the snapshot."""
    csi, bsi = ds.neuron_csi, ds.neuron_bsi
    alive = csi.notnull() & bsi.notnull()
    n = alive.sum("neuron")
    reached = n > 0
    return xr.Dataset({
        "class_dominant": ((csi > bsi) & alive).sum("neuron").where(reached) / n.where(reached),
        "bias_dominant": ((bsi > csi) & alive).sum("neuron").where(reached) / n.where(reached),
        "mean_bsi": bsi.mean("neuron"),
        "mean_csi": csi.mean("neuron"),
    })


def low_high(ds: xr.Dataset) -> tuple[float, float]:
    """The smallest and largest compared LR of a sweep (every seed converged, none diverged)."""
    lrs = comparable_lrs(ds)
    if len(lrs) < 2:
        raise ValueError("the sweep needs two compared LRs; raise train.max_steps or change the grid")
    return lrs[0], lrs[-1]
