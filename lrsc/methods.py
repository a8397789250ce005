"""The robust-training methods of ``train.method``: what the one-model loop minimises in their place.

Each method turns a minibatch's per-sample cross-entropies into the loss a step minimises,
in the formulas of its paper:

- **JTT** (Liu et al. 2021, "Just Train Twice"): an ERM *identification* run comes first
  (:func:`lrsc.train.train` trains it, capped at ``train.jtt_steps``); the final model is then
  trained with that run's training errors upweighted by ``train.jtt_up``. The paper upsamples
  the error set λ_up times; here each sample's loss carries its weight instead, divided by the
  mean weight over the training set (:func:`jtt_weights`), so that a minibatch's loss has the
  upsampled set's mean loss as its expectation and an LR means the same step size as in ERM.
- **LfF** (Nam et al. 2020, "Learning from Failure"): a biased model trains beside the
  debiased one on the generalized cross-entropy (:func:`gce`), which dwells on the samples it
  already fits, while the debiased model weights each sample by its relative difficulty
  ``W = CE_b / (CE_b + CE_d)`` (:func:`relative_difficulty`), computed on the minibatch as in
  the paper's Algorithm 1 and held constant in the gradient. Both models start from the run's
  initialisation (so the run's seed fixes both) and take the same optimiser settings.
- **GroupDRO** (Sagawa et al. 2020, Algorithm 1): weights q over the groups (y, b), moved
  every step by ``q_g <- q_g exp(eta l_g)`` and renormalised, ``l_g`` the minibatch's mean
  loss over group g (0 for a group it lacks); the loss is ``sum_g q_g l_g``
  (:func:`group_dro_step`). It reads the training set's bias labels, which no other method sees.

``erm`` has no object here: the loop takes the mean cross-entropy (with the focal loss's
weights where set, see :mod:`lrsc.objective`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lrsc.datasets import Split
from lrsc.settings import TrainSettings


def gce(logits: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    """Generalized cross-entropy ``(1 - p_y^q) / q`` per sample (Zhang & Sabuncu 2018), p_y the
    true class's probability; logits ``(n, K)``, y ``(n,)``, returns ``(n,)``. Its gradient is
    ``p_y^q`` times the cross-entropy's: samples the model already fits weigh most."""
    p = logits.softmax(-1).gather(1, y[:, None]).squeeze(1)
    return (1 - p.pow(q)) / q


def relative_difficulty(ce_biased: torch.Tensor, ce_debiased: torch.Tensor) -> torch.Tensor:
    """LfF's per-sample weight ``CE_b / (CE_b + CE_d)`` (each ``(n,)``), in [0, 1]: near 1 for the
    samples the biased model fails on. Two losses that are both exactly 0 weigh 1/2 (equal difficulty)."""
    total = ce_biased + ce_debiased
    return torch.where(total > 0, ce_biased / total.clamp_min(torch.finfo(total.dtype).tiny), 0.5)


def group_dro_step(q: torch.Tensor, losses: torch.Tensor, groups: torch.Tensor,
                   eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One GroupDRO step: the updated group weights and the loss to minimise.

    q: the group weights ``(G,)``, summing to 1; losses ``(n,)`` the minibatch's cross-entropies,
    groups ``(n,)`` their group ids in ``[0, G)``. Returns ``q' = q exp(eta l) / sum(q exp(eta l))``
    (``l_g`` each group's mean loss, 0 where the minibatch has none of it, taken without gradient)
    and ``sum_g q'_g l_g``, which carries the gradient.
    """
    counts = torch.bincount(groups, minlength=len(q)).to(losses.dtype)
    group_loss = torch.zeros_like(q, dtype=losses.dtype).index_add(0, groups, losses) / counts.clamp_min(1)
    q = q * torch.exp(eta * group_loss.detach())
    q = q / q.sum()
    return q, (q * group_loss).sum()


def jtt_weights(errors: torch.Tensor, up: float) -> torch.Tensor:
    """JTT's per-sample loss weights ``(n,)`` from the identification run's error mask ``errors``
    ``(n,)``: ``up`` for an error and 1 for the rest, divided by their mean over the training set,
    so that the weighted loss's expectation over uniform minibatches is the mean loss of the
    training set with each error repeated ``up`` times."""
    w = torch.where(errors, torch.tensor(float(up), device=errors.device), torch.tensor(1.0, device=errors.device))
    return w / w.mean()


class Method:
    """A robust-training method's objective in the one-model loop: ``models`` are trained beside
    the run's model (LfF's biased one; their parameters join the optimiser), and :meth:`loss`
    gives a minibatch's loss."""

    models: list[nn.Module] = []

    def loss(self, idx: torch.Tensor, y: torch.Tensor, losses: torch.Tensor,
             extra_logits: list[torch.Tensor]) -> torch.Tensor:
        """The loss of the minibatch at training-set rows ``idx`` (labels y ``(B,)``, the run's
        model's per-sample cross-entropies ``losses`` ``(B,)``, the logits of each of ``models``)."""
        raise NotImplementedError


class Jtt(Method):
    """JTT's second stage: the identification run's errors (``errors``, ``(n,)`` over the training set) upweighted."""

    def __init__(self, errors: torch.Tensor, up: float):
        self.models = []
        self.weights = jtt_weights(errors, up)

    def loss(self, idx, y, losses, extra_logits):
        return (self.weights[idx] * losses).mean()


class Lff(Method):
    """LfF: the biased model (a copy of the run's model at its initialisation) on the GCE with ``q``,
    the run's model on the cross-entropy weighted by relative difficulty."""

    def __init__(self, model: nn.Module, q: float):
        self.models = [copy.deepcopy(model)]
        self.q = q

    def loss(self, idx, y, losses, extra_logits):
        biased = extra_logits[0]
        with torch.no_grad():
            w = relative_difficulty(F.cross_entropy(biased, y, reduction="none"), losses)
        return (w * losses).mean() + gce(biased, y, self.q).mean()


class GroupDro(Method):
    """GroupDRO over the training set's groups ``(y, b)``, starting from uniform weights."""

    def __init__(self, data: Split, eta: float):
        self.models = []
        self.groups, self.eta = data.group, eta
        self.q = torch.full((data.num_groups,), 1 / data.num_groups, device=data.y.device)

    def loss(self, idx, y, losses, extra_logits):
        self.q, loss = group_dro_step(self.q, losses, self.groups[idx], self.eta)
        return loss


def build(s: TrainSettings, model: nn.Module, data: Split, errors: torch.Tensor | None = None) -> Method | None:
    """The method of ``s.method`` for ``model`` trained on ``data`` (None for erm); JTT needs its
    identification run's training ``errors``."""
    if s.method == "jtt":
        if errors is None:
            raise ValueError("train.method=jtt needs the identification run's training errors")
        return Jtt(errors, s.jtt_up)
    if s.method == "lff":
        return Lff(model, s.lff_q)
    if s.method == "group_dro":
        return GroupDro(data, s.dro_eta)
    return None
