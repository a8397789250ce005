"""When a training run stops, and what it ends with: the rules both training paths apply.

A run stops when it is fit (100% training accuracy, or a mean training cross-entropy below
``train.stop_loss``) and has taken its ``train.extra_steps``; at the step cap; or when it
diverges (a non-finite loss or weight, a dead network, a collapse back to chance accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lrsc.datasets import Split
from lrsc.records import Recorder


@dataclass
class TrainResult:
    """What a training run ended with.

    steps: optimiser steps taken. converged: met the fitting criterion (100% training accuracy,
    or a training cross-entropy below ``stop_loss``) before the cap, then took its extra steps.
    fit_step: the step at which it met it (``steps`` if never).
    diverged: ended by a non-finite loss or parameter, a dead network (every
    penultimate unit off on every training input) or a collapse (training accuracy
    fell back to chance after having learnt and stayed there). reason: one of
    ``"converged"``, ``"step cap"``, ``"non-finite"``, ``"dead network"``, ``"collapse"``.
    train_acc: training accuracy at the last evaluation (fraction in [0, 1]).
    records: ``{name: (steps // record_every,) float32 CPU tensor}`` for each of
    :data:`lrsc.records.RECORDS`, row ``i`` taken after step ``(i + 1) * record_every``.
    snapshots: ``[(step, {name: tensor})]``, what the ``snapshot`` function returned at each
    of the ``snapshot_steps`` the run reached (step 0 is before the first step).
    """

    steps: int
    converged: bool
    diverged: bool
    reason: str
    train_acc: float
    records: dict[str, torch.Tensor]
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    fit_step: int = 0


def finite_params(model: nn.Module) -> bool:
    """Whether every parameter and floating-point buffer (e.g. BatchNorm's running statistics) of
    ``model`` is finite: a model with a non-finite one computes NaN in eval mode."""
    return all(torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point())


class Monitor:
    """The stopping rules of one run, applied at every evaluation (each ``eval_every`` steps).

    A run is fit when its training accuracy is 100% or, with ``stop_loss`` > 0, when its mean
    training cross-entropy is below ``stop_loss``; it then trains ``extra_steps`` more steps
    (stopped early only by a non-finite loss or weight) and ends as converged.
    """

    def __init__(self, data: Split, collapse_patience: int, stop_loss: float = 0.0, extra_steps: int = 0):
        self.chance = torch.bincount(data.y).max().item() / len(data)  # accuracy of the majority-class guess
        self.patience, self.stop_loss, self.extra_steps = collapse_patience, stop_loss, extra_steps
        self.best_acc, self.at_chance, self.train_acc = 0.0, 0, 0.0
        self.fit_at: int | None = None

    def check(self, finite: bool, train_acc: float, train_loss: float, alive: bool, step: int, at_cap: bool) -> str:
        """Why training must stop now (a ``TrainResult.reason``), or ``""`` to go on.

        finite: the weights and the losses since the previous evaluation are finite;
        train_acc / train_loss: accuracy and mean cross-entropy on the full training set;
        alive: some penultimate unit is non-zero on some training input; step: steps taken;
        at_cap: the step cap is reached.
        """
        if not finite:
            return "non-finite"
        self.train_acc = train_acc
        if self.fit_at is not None:
            return "converged" if step >= self.fit_at + self.extra_steps else ""
        self.best_acc = max(self.best_acc, train_acc)
        learnt = self.best_acc > self.chance + 0.05
        self.at_chance = self.at_chance + 1 if learnt and train_acc <= self.chance + 0.01 else 0
        if (train_loss < self.stop_loss) if self.stop_loss > 0 else (train_acc == 1.0):
            self.fit_at = step
            return "" if self.extra_steps else "converged"
        if not alive:
            return "dead network"
        if self.at_chance >= self.patience:
            return "collapse"
        return "step cap" if at_cap else ""

    @property
    def deadline(self) -> int | None:
        """The step at which a fit run's extra steps end (an evaluation is due then), else None."""
        return None if self.fit_at is None else self.fit_at + self.extra_steps

    def result(self, reason: str, steps: int, recorder: Recorder, i: int) -> TrainResult:
        """Model ``i``'s result after ``steps`` steps, with its records and snapshots from ``recorder``."""
        return TrainResult(
            steps=steps,
            converged=reason == "converged",
            diverged=reason in ("non-finite", "dead network", "collapse"),
            reason=reason,
            train_acc=self.train_acc,
            records=recorder.records(i, steps),
            snapshots=recorder.snapshots[i],
            fit_step=self.fit_at if self.fit_at is not None else steps,
        )
