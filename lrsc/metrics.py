"""The paper's metrics, each as its definition below states.

Vector metrics take ``x`` of shape ``(..., d)`` and return one value per vector,
shape ``(...)``. Accuracies are fractions in [0, 1].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lrsc.models import predict
from lrsc.prune import METHODS, prune_structured


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
                method: str = "structured", scope: str = "layer") -> tuple[float, list[float]]:
    """Mean over ``fractions`` of ``P_q = Acc(f_q) / Acc(f)``, and the list of ``P_q``.

    ``f_q`` is ``model`` with a fraction q of its neurons or filters pruned by L1 norm
    (``method="structured"``; per layer or over the whole network, ``scope``, see
    :func:`lrsc.prune.prune_structured`) or of every prunable layer's weights (``"magnitude"``).
    NaN when the unpruned model has accuracy 0.
    """
    base = accuracy(predict(model, x)[1], y)
    prune = (lambda q: prune_structured(model, q, scope)) if method == "structured" else \
        (lambda q: METHODS[method](model, q))
    ratios = [accuracy(predict(prune(q), x)[1], y) / base if base > 0 else math.nan for q in fractions]
    return sum(ratios) / len(ratios), ratios


def class_separation(h: torch.Tensor, labels: torch.Tensor) -> float:
    """Class separation R^2 of representations ``h`` ``(n, d)`` with class ``labels`` ``(n,)``
    (Kornblith et al. 2021), cosine distance:

    ``d_within = sum_k sum_{m,n in k} (1 - sim(x_m, x_n)) / sum_k N_k^2``,
    ``d_total = sum_{m,n} (1 - sim(x_m, x_n)) / N^2``, ``R^2 = 1 - d_within / d_total``.

    With unit vectors ``u``, ``sum_{m,n in k} sim = ||sum_{m in k} u_m||^2``, so this costs
    O(n d). An all-zero representation has similarity 0 with every vector, itself included.
    NaN when ``d_total`` is 0 (every representation the same direction).
    """
    u = h.double()
    norms = u.norm(dim=1, keepdim=True)
    u = torch.where(norms > 0, u / norms.clamp_min(1e-300), torch.zeros_like(u))
    sums = torch.zeros(int(labels.max()) + 1, u.shape[1], dtype=u.dtype, device=u.device).index_add_(0, labels, u)
    counts = torch.bincount(labels).double()
    d_within = 1 - sums.pow(2).sum() / counts.pow(2).sum()
    d_total = 1 - u.sum(0).pow(2).sum() / len(u) ** 2
    return (1 - d_within / d_total).item() if d_total > 0 else math.nan


def selectivity(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Coverage-scaled selectivity index of each unit of ``h`` ``(n, d)`` for ``labels`` ``(n,)``
    (Leavitt & Morcos 2021): with ``mu_k`` the unit's mean activation over the
    samples of label ``k``, ``mu_max = max_k mu_k`` and ``mu_rest`` the mean of the other
    labels' means, ``(mu_max - mu_rest) / (mu_max + mu_rest)`` times the fraction of the
    argmax label's samples on which the unit is > 0. Shape ``(d,)``; NaN for a unit that
    never fires (``mu_max + mu_rest = 0``) and for a unit that takes negative values (the index
    compares mean activations as magnitudes, so it is defined for non-negative activations only,
    such as ReLU outputs; a transformer's normalised tokens are signed). With class labels this
    is the CSI, with bias labels the BSI.
    """
    k = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(labels, k).double()  # (n, K)
    counts = onehot.sum(0).clamp_min(1)[:, None]
    means = onehot.T @ h.double() / counts  # (K, d)
    fired = onehot.T @ (h > 0).double() / counts  # fraction of each label's samples on which each unit fires
    top = means.argmax(0)
    mu_max = means.gather(0, top[None])[0]
    mu_rest = (means.sum(0) - mu_max) / (k - 1)
    coverage = fired.gather(0, top[None])[0]
    index = (mu_max - mu_rest) / (mu_max + mu_rest) * coverage
    defined = (mu_max + mu_rest > 0) & (h >= 0).all(0)
    return torch.where(defined, index, torch.full_like(index, math.nan)).float()


def network_selectivity(h: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean of :func:`selectivity` over the units that fire on some input (dead units left out,
    as in the authors' later code); NaN when none fires."""
    index = selectivity(h, labels)
    return torch.nanmean(index).item() if torch.isfinite(index).any() else math.nan


def csi(h: torch.Tensor, y: torch.Tensor) -> float:
    """Class-selectivity index of a network's representations ``h`` ``(n, d)``: :func:`network_selectivity` with class labels."""
    return network_selectivity(h, y)


def bsi(h: torch.Tensor, b: torch.Tensor) -> float:
    """Bias-selectivity index: :func:`network_selectivity` with bias labels ``b``."""
    return network_selectivity(h, b)


def attribution_entropy(attr: torch.Tensor, channels: bool = True) -> torch.Tensor:
    """Entropy of each normalised |attribution| map, divided by log(#positions) to lie in [0, 1].

    attr: ``(n, C, H, W)`` images (|attribution| summed over channels first when ``channels``)
    or ``(n, d)`` vectors. ``p_i = |A_i| / sum_j |A_j|``; ``H = -sum_i p_i log p_i / log(#positions)``
    (the division is our choice). Shape ``(n,)``; NaN for an all-zero map.
    0 means all attribution on one position, 1 spread evenly over all of them.
    """
    a = attr.abs()
    if channels and a.ndim == 4:
        a = a.sum(1)
    a = a.flatten(1).double()
    p = a / a.sum(1, keepdim=True)
    h = -torch.special.xlogy(p, p).sum(1) / math.log(a.shape[1])
    return h.float()


def nanmean(values: torch.Tensor) -> float:
    """Mean of the entries of ``values`` that are not NaN, as a float (NaN when all are)."""
    return torch.nanmean(values.float()).item()
