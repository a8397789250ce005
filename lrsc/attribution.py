"""Integrated Gradients (captum) and the share of attribution on named input regions."""
from __future__ import annotations

import warnings

import torch
from torch import nn
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # captum imports tqdm.auto, which warns in every notebook without ipywidgets; lrsc shows no captum bars
    warnings.simplefilter("ignore", TqdmWarning)
    from captum.attr import IntegratedGradients


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                         n_steps: int = 32, chunk: int = 256) -> torch.Tensor:
    """IG attributions of ``model``'s ``target`` logit, zero baseline; same shape as ``x``.

    Computed ``chunk`` inputs at a time (each expands to ``chunk * n_steps`` forward rows).
    """
    was_training = model.training
    model.eval()
    ig = IntegratedGradients(model)
    out = torch.cat([
        ig.attribute(x[i:i + chunk], baselines=torch.zeros_like(x[i:i + chunk]), target=target[i:i + chunk], n_steps=n_steps)
        for i in range(0, len(x), chunk)
    ])
    model.train(was_training)
    return out.detach()


def region_shares(attr: torch.Tensor, regions: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over inputs of each region's share of total |attribution|.

    attr: attributions, shape ``(n, *input_shape)``; regions: boolean masks of shape
    ``input_shape``. Inputs whose attribution is all zero are left out of the mean.
    """
    a = attr.abs().flatten(1)
    total = a.sum(1)
    keep = total > 0
    return {name: (a[keep][:, mask.flatten()].sum(1) / total[keep]).mean().item() for name, mask in regions.items()}
