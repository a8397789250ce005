"""What a training run records as it goes: per-step statistics of its minibatches, and snapshots.

Every ``train.record_every`` steps each model keeps the :data:`RECORDS` of its minibatch
(after the step); at each of ``metrics.snapshot_steps`` it keeps a snapshot (per-neuron CSI
and BSI, see :func:`lrsc.evaluation.neuron_selectivity`). Records stay on the device and are
read back once, when the run ends, so the training loop never waits for the host.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

# Per-step records of a training run (one row every ``record_every`` steps), in this order.
RECORDS = ("loss", "bc_loss_ratio", "bc_loss", "ba_loss", "confident_bc", "logit_norm", "param_norm")

# What a run keeps at each of its snapshot steps: model -> {name: tensor}.
Snapshot = Callable[[nn.Module], dict[str, torch.Tensor]]


def bc_loss_ratio(losses: torch.Tensor, conflicting: torch.Tensor) -> torch.Tensor:
    """Sum of bias-conflicting samples' losses over the sum of all losses in a minibatch.

    losses: per-sample losses, shape ``(..., B)``; conflicting: boolean mask of the same shape.
    Returns shape ``(...)`` (0 where the minibatch holds no BC sample).
    """
    return (losses * conflicting).sum(-1) / losses.sum(-1)


def step_records(losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, conflicting: torch.Tensor,
                 weights: Sequence[torch.Tensor], confident_prob: float) -> torch.Tensor:
    """The :data:`RECORDS` of A models' minibatches, shape ``(A, len(RECORDS))``.

    losses: per-sample cross-entropy ``(A, B)``; logits ``(A, B, K)``; y, conflicting ``(A, B)``;
    weights: every parameter of the A models, stacked, each ``(A, ...)`` (after the step).
    loss: mean loss; bc_loss_ratio: :func:`bc_loss_ratio`; bc_loss / ba_loss: mean loss of the
    bias-conflicting / bias-aligned samples (NaN when there are none); confident_bc: the share of
    BC samples predicted wrong with a probability above ``confident_prob``; logit_norm: mean L2
    norm of a sample's logits; param_norm: L2 norm of all parameters.

    Every number is the same whatever the thread count and the batch-mates: the rows of a
    minibatch are too short for a reduction to be split between threads, and the parameter
    norm, whose rows are long enough to be, is summed in float64, where the order of the sum
    does not reach the float32 result.
    """
    bc = conflicting.float()
    n_bc, n_ba = bc.sum(-1), (1 - bc).sum(-1)
    prob, pred = logits.softmax(-1).max(-1)
    confident_wrong = ((pred != y) & (prob > confident_prob)).float()
    sq_norm = sum(w.flatten(1).double().pow(2).sum(1) for w in weights)
    return torch.stack([
        losses.mean(-1), bc_loss_ratio(losses, conflicting),
        (losses * bc).sum(-1) / n_bc, (losses * (1 - bc)).sum(-1) / n_ba,
        (confident_wrong * bc).sum(-1) / n_bc, logits.norm(dim=-1).mean(-1), sq_norm.sqrt().float(),
    ], dim=-1)


class Recorder:
    """Records of M models every ``every`` steps, and their snapshots, kept on the device."""

    def __init__(self, m: int, max_steps: int, every: int, confident_prob: float, device: torch.device,
                 snapshot: Sequence[Snapshot] | None, snapshot_steps: Sequence[int]):
        self.every, self.confident_prob = every, confident_prob
        self.hist = torch.full((m, max_steps // every, len(RECORDS)), float("nan"), device=device)
        self.snapshot, self.snapshot_steps = snapshot, set(snapshot_steps) if snapshot else set()
        self.snapshots: list[list[tuple[int, dict[str, torch.Tensor]]]] = [[] for _ in range(m)]

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1-based, just taken) is recorded."""
        return step % self.every == 0

    def add(self, rows: torch.Tensor, step: int, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            conflicting: torch.Tensor, weights: Sequence[torch.Tensor]) -> None:
        """Record step ``step`` (a :meth:`due` one) of the models in ``rows``."""
        self.hist[rows, step // self.every - 1] = step_records(losses, logits, y, conflicting, weights,
                                                               self.confident_prob)

    def snap(self, step: int, models: Sequence[nn.Module], active: Sequence[int]) -> None:
        """Take the snapshots due at ``step`` of ``models[i]`` for each ``i`` in ``active``."""
        if step in self.snapshot_steps:
            for i in active:
                self.snapshots[i].append((step, self.snapshot[i](models[i])))

    def finite(self, rows: torch.Tensor, step: int, span: int) -> torch.Tensor:
        """Whether the losses recorded in the last ``span`` steps before ``step`` are finite, ``(A,)``."""
        return torch.isfinite(self.hist[rows, max(0, step - span) // self.every:step // self.every, 0]).all(1)

    def records(self, i: int, steps: int) -> dict[str, torch.Tensor]:
        rows = self.hist[i, :steps // self.every].float().cpu()
        return {name: rows[:, k].clone() for k, name in enumerate(RECORDS)}
