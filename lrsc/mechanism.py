"""The paper's mechanism (its Sec. 6), measured: BC samples' share of the loss, logit scaling
(Prop. 1-2), training dynamics (Fig. 13) and class-dominant neurons over training (Fig. 18).

The statements are our reconstruction of the paper's prose, whose formulas our copy of the
paper lacks; the book's mechanism chapter restates each one before measuring it. This module
computes; :mod:`lrsc.judges` judges what it computes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from lrsc import datasets, sweepdir
from lrsc.verdicts import compared


# How the tables of this module's results name their columns for readers.
HEADERS = {"logit_norm": "logit norm", "param_norm": "parameter norm", "confident_bc": "peak confident BC share",
           "bc_loss_ratio": "peak BC loss ratio", "common_steps": "steps both took", "bc_loss_share": "BC share of loss",
           "wrong_loss_share": "wrong samples' share of loss", "spurious_grad_share": "spurious share of input gradient",
           "bc_grad_share": "BC share of logit gradient", "stay_class": "class-dominant, still at the end",
           "stay_bias": "bias-dominant, still at the end", "attr_entropy": "attr. entropy", "bg_share": "bg. share",
           "end": "LR end", "lr": "LR", "alpha": "logit scale", "snapshot": "step"}


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column and index names as :data:`HEADERS` names them for readers."""
    out = frame.rename(columns=HEADERS)
    out.columns = out.columns.set_names([HEADERS.get(n, n) for n in out.columns.names])
    return out.rename_axis(index=[HEADERS.get(n, n) for n in out.index.names])


def runs_table(results: dict[str, xr.Dataset], x: str = "max_bc_loss_ratio", y: str = "test_acc") -> pd.DataFrame:
    """Every compared run (converged, not diverged) of the sweeps ``{name: ds}`` (dims ``lr``,
    ``seed``) as a row: ``sweep``, ``lr``, ``seed``, ``x`` and ``y``."""
    rows = []
    for name, ds in results.items():
        frame = ds[[x, y, "converged", "diverged"]].to_dataframe().reset_index()
        frame = frame[frame.converged & ~frame.diverged]
        rows.append(frame.assign(sweep=name)[["sweep", "lr", "seed", x, y]])
    return pd.concat(rows, ignore_index=True)


def correlations(runs: pd.DataFrame, x: str = "max_bc_loss_ratio", y: str = "test_acc") -> pd.DataFrame:
    """The Spearman correlation of ``x`` and ``y`` over the runs of each sweep (NaN with fewer than
    three), for a table beside the pooled verdict of :func:`lrsc.verdicts.correlation`."""
    out = {}
    for name, g in runs.groupby("sweep", sort=False):
        enough = len(g) >= 3 and g[x].nunique() > 1 and g[y].nunique() > 1
        out[name] = {"runs": len(g), "Spearman": g[x].rank().corr(g[y].rank()) if enough else np.nan}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("sweep")


def load_model(out_dir: str | Path, device: str = "cpu", **point) -> tuple[nn.Module, dict]:
    """The trained model of the run at grid ``point`` (e.g. ``lr=0.1, seed=0``) of the sweep in
    ``out_dir``, in eval mode, and the run's config."""
    from lrsc.runs import load_model as from_store

    grid = sweepdir.read_grid(out_dir)
    for values, h in zip(sweepdir.points(grid), grid["hashes"]):
        if all(values.get(k) == v for k, v in point.items()):
            return from_store(grid["store"], h, device)
    raise ValueError(f"no run of the sweep in {out_dir} is at {point}")


def low_high(ds: xr.Dataset) -> tuple[float, float]:
    """The smallest and largest compared LR of a sweep (every seed converged, none diverged)."""
    lrs = compared(ds)
    if len(lrs) < 2:
        raise ValueError("the sweep needs two compared LRs; raise train.max_steps or change the grid")
    return lrs[0], lrs[-1]


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
      (Prop. 2; NaN unless ``split.regions`` names ``core`` and ``spurious``);
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
        grad_x, grad_z = torch.autograd.grad(losses.sum(), (x, logits))
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


def scaling_by_seed(out_dir: str | Path, lr: float, seeds: Sequence[int], alphas: Sequence[float], n_batch: int,
                    device: str = "cpu") -> xr.Dataset:
    """:func:`logit_scaling` of the model trained at ``lr`` for each seed of the sweep in ``out_dir``,
    on a held-out batch of ``n_batch`` unbiased test samples whose BC share is the training set's
    rho; dims ``(seed, alpha)``."""
    from lrsc.runs import load_data

    tables = []
    for seed in seeds:
        model, run = load_model(out_dir, device, lr=lr, seed=seed)
        test_set = load_data(run, device)[1]
        batch = with_bc_fraction(test_set, run["dataset_params"].get("rho", 0.05), n_batch, seed)
        tables.append(xr.Dataset.from_dataframe(logit_scaling(model, batch, alphas)))
    ds = xr.concat(tables, dim=pd.Index(list(seeds), name="seed"), coords="minimal")
    ds.attrs.update(lr=lr, n_batch=n_batch)
    return ds


def dynamics_ends(ds: xr.Dataset) -> xr.Dataset:
    """Fig. 13 per seed, comparing the smallest and largest compared LR over the steps both runs of a
    seed took: the last recorded logit and parameter norms, and the peaks of the confidently
    mispredicted BC share and of the BC loss ratio; dims ``(end, seed)`` with ``end`` low, high."""
    lo, hi = low_high(ds)
    out = {}
    for seed in ds.seed.values:
        runs = ds.sel(lr=[lo, hi], seed=seed)
        window = runs.sel(step=slice(None, int(runs.steps.min())))
        out[int(seed)] = xr.Dataset({"logit_norm": _last(window.logit_norm), "param_norm": _last(window.param_norm),
                                     "confident_bc": window.confident_bc.max("step"),
                                     "bc_loss_ratio": window.bc_loss_ratio.max("step"),
                                     "common_steps": runs.steps.min()})
    result = xr.concat(list(out.values()), dim=pd.Index(list(out), name="seed"), coords="minimal")
    return result.rename(lr="end").assign_coords(end=["low", "high"]).assign_attrs(lo=lo, hi=hi)


def _last(trace: xr.DataArray) -> xr.DataArray:
    """The last recorded (non-NaN) value of each trace along ``step``."""
    position = xr.DataArray(np.arange(trace.sizes["step"]), dims="step")
    return trace.isel(step=(trace.notnull() * position).argmax("step")).drop_vars("step")


def final_dominance(ds: xr.Dataset) -> xr.Dataset:
    """Per LR and seed, the share of the penultimate neurons that fire at the end of training (finite
    CSI and BSI) which are class-dominant (CSI > BSI) and bias-dominant (BSI > CSI): the base rate a
    neuron's persistence (:func:`persistence`) is read against."""
    csi, bsi = ds.neuron_csi_final, ds.neuron_bsi_final
    alive = csi.notnull() & bsi.notnull()
    n = alive.sum("neuron").where(lambda v: v > 0)
    return xr.Dataset({"class_dominant": ((csi > bsi) & alive).sum("neuron") / n,
                       "bias_dominant": ((bsi > csi) & alive).sum("neuron") / n})


def persistence(ds: xr.Dataset) -> xr.Dataset:
    """Fig. 18 as the paper asks it: of the neurons class-dominant (CSI > BSI) at each snapshot
    step, the share still class-dominant at the end of training (``stay_class``), and the same
    for bias-dominant neurons (``stay_bias``); dims ``(lr, seed, snapshot)``, NaN where the run had
    stopped or no neuron was of that kind."""
    alive = ds.neuron_csi.notnull() & ds.neuron_bsi.notnull()
    end_alive = ds.neuron_csi_final.notnull() & ds.neuron_bsi_final.notnull()
    class_then, bias_then = (ds.neuron_csi > ds.neuron_bsi) & alive, (ds.neuron_bsi > ds.neuron_csi) & alive
    class_end = (ds.neuron_csi_final > ds.neuron_bsi_final) & end_alive
    bias_end = (ds.neuron_bsi_final > ds.neuron_csi_final) & end_alive

    def share(then: xr.DataArray, end: xr.DataArray) -> xr.DataArray:
        n = then.sum("neuron")
        return (then & end).sum("neuron").where(n > 0) / n.where(n > 0)

    return xr.Dataset({"stay_class": share(class_then, class_end), "stay_bias": share(bias_then, bias_end)})
