"""Metrics exactly as SPEC §4 defines them.

Vector metrics take ``x`` of shape ``(..., d)`` and return one value per vector,
shape ``(...)``. Accuracies are fractions in [0, 1].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lrsc.models import predict
from lrsc.prune import METHODS


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct predictions; ``pred`` holds class ids ``(n,)`` or logits ``(n, K)``."""
    if pred.ndim == 2:
        pred = pred.argmax(1)
    return (pred == y).float().mean().item()


def group_accuracies(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> dict[int, float]:
    """Accuracy of each group id present in ``group``."""
    if pred.ndim == 2:
        pred = pred.argmax(1)
    return {int(g): accuracy(pred[group == g], y[group == g]) for g in torch.unique(group)}


def worst_group_accuracy(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> float:
    """Smallest accuracy over the groups ``(y, b)`` present in ``group``."""
    return min(group_accuracies(pred, y, group).values())


def sparsity(x: torch.Tensor) -> torch.Tensor:
    """Fraction of entries exactly equal to 0, per vector."""
    return (x == 0).float().mean(-1)


def q_compressibility(x: torch.Tensor, q: float = 0.1) -> torch.Tensor:
    """``1 - ||x - x_(k)||_2 / ||x||_2`` with ``x_(k)`` the ``k = ceil(q d)`` largest-magnitude
    entries of ``x`` (Gribonval et al. 2012). NaN for an all-zero vector."""
    d = x.shape[-1]
    k = math.ceil(q * d)
    mags = x.abs().sort(-1, descending=True).values
    return 1 - mags[..., k:].norm(dim=-1) / x.norm(dim=-1)


def pq_index(x: torch.Tensor, p: float = 1.0, q: float = 2.0) -> torch.Tensor:
    """PQ-index (Diao et al. 2023): ``1 - d^(1/q - 1/p) ||x||_p / ||x||_q``; with the defaults
    p=1, q=2 this is ``1 - ||x||_1 / (sqrt(d) ||x||_2)``. NaN for an all-zero vector."""
    d = x.shape[-1]
    return 1 - d ** (1 / q - 1 / p) * x.norm(p=p, dim=-1) / x.norm(p=q, dim=-1)


def prunability(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                method: str = "structured") -> tuple[float, list[float]]:
    """Mean over ``fractions`` of ``P_q = Acc(f_q) / Acc(f)``, and the list of ``P_q``.

    ``f_q`` is ``model`` with a fraction q of every prunable layer's neurons pruned
    (``method="structured"``, by L1 norm) or of its weights (``"magnitude"``).
    NaN when the unpruned model has accuracy 0.
    """
    base = accuracy(predict(model, x)[1], y)
    ratios = [accuracy(predict(METHODS[method](model, q), x)[1], y) / base if base > 0 else math.nan
              for q in fractions]
    return sum(ratios) / len(ratios), ratios
