"""The models at the two ends of a sweep's LR range, judged on common test images: the Fig. 8
selection of the samples large-LR models get right, and the IG-against-DeepLift cross-check.

Each seed of a standard-classification sweep may hold out its own test images from the
training set, so one seed's test image can be another's training image; these helpers judge
every model on the official test images present in the data root instead, which no seed
trained on.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from lrsc import datasets, metrics, sweepdir
from lrsc.attribution import background_masks, background_share, deeplift, integrated_gradients
from lrsc.collect import read_results
from lrsc.mechanism import load_model, low_high


def end_models(out_dir: str | Path) -> tuple[datasets.Split, dict[tuple[float, int], nn.Module], tuple[float, float]]:
    """The official test split of the sweep's dataset, the trained models at its smallest and
    largest compared LR by ``(lr, seed)``, and those two LRs."""
    ds = read_results(Path(out_dir) / "results.nc")
    lo, hi = low_high(ds)
    cfg = sweepdir.read_config(out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short local copy of the official test batch: its size is on the page
        test = datasets.build(cfg["dataset"], seed=int(ds.seed[0]),
                              **{**cfg["dataset_params"], "test_from_train": 0, "n_test": None})[1]
    models = {(lr, int(seed)): load_model(out_dir, lr=lr, seed=int(seed))[0] for lr in (lo, hi) for seed in ds.seed.values}
    return test, models, (lo, hi)


def correct(models: dict[tuple[float, int], nn.Module], test: datasets.Split,
            lrs: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether each model at each of the two ``lrs`` gets each test image right: two boolean
    ``(seeds, n)`` tensors, for :func:`lrsc.attribution.high_lr_wins`."""
    out = []
    for lr in lrs:
        rows = []
        for (at, _), model in sorted(models.items()):
            if at == lr:
                with torch.no_grad():
                    rows.append(model(test.x).argmax(1) == test.y)
        out.append(torch.stack(rows))
    return out[0], out[1]


def methods_table(models: dict[tuple[float, int], nn.Module], test: datasets.Split, cfg: dict) -> xr.Dataset:
    """Attribution entropy and background share of each model on the first ``cfg["n_attr"]``
    test images, by Integrated Gradients and by DeepLift; dims ``(attribution, end, seed)`` with
    ``end`` low and high (the smallest and largest LR of ``models``)."""
    n = min(cfg["n_attr"], len(test))
    x, y = test.x[:n], test.y[:n]
    masks = background_masks(x, cfg["bg_mask"], cfg["deeplab_weights"]) if cfg["bg_mask"] != "none" else None
    lrs = sorted({lr for lr, _ in models})
    seeds = sorted({seed for _, seed in models})
    methods = {"IG": lambda m: integrated_gradients(m, x, y, cfg["ig_steps"]), "DeepLift": lambda m: deeplift(m, x, y)}
    values = {name: np.full((len(methods), 2, len(seeds)), np.nan) for name in ("attr_entropy", "bg_share")}
    for i, attribute in enumerate(methods.values()):
        for j, lr in enumerate((lrs[0], lrs[-1])):
            for k, seed in enumerate(seeds):
                a = attribute(models[(lr, seed)])
                values["attr_entropy"][i, j, k] = metrics.nanmean(metrics.attribution_entropy(a))
                if masks is not None:
                    values["bg_share"][i, j, k] = metrics.nanmean(background_share(a, masks))
    coords = {"attribution": list(methods), "end": ["low", "high"], "seed": seeds}
    return xr.Dataset({name: (("attribution", "end", "seed"), v) for name, v in values.items()}, coords=coords,
                      attrs={"lrs": str((lrs[0], lrs[-1])), "n_images": n})

