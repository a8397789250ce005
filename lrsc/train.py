"""Training until 100% training accuracy (or a cross-entropy threshold), a step cap, or divergence.

One readable loop in the spirit of nanoGPT. The training set lives on the model's
device and is batched by index (as in airbench); per-step records stay on the device
and are read only at evaluations, so the hot loop never waits for the host.

``train`` trains one model; ``train_batched`` trains M models of one architecture at
once (their weights stacked along a leading dim), each with its own learning rate, seed,
training set, SGD settings (momentum, weight decay, L1, focal gamma, LR schedule) and
stopping point, and gives each the result ``train`` would have given. Both apply the
same stopping rules (:class:`_Monitor`) and keep the same records (:data:`RECORDS`).

A bias-free FCN trained with SGD (no ASAM) always goes through the stacked kernel
(:class:`_StackedFcn`), alone or with others: its per-model arithmetic is the same
whatever its batch-mates, so a run's numbers depend on its settings only, not on how a
sweep grouped it (:func:`stacked_kernel`). Adam, AdamW, PSGD-Kron and ASAM train one
model at a time with torch's and pytorch-optimizer's implementations.
"""
from __future__ import annotations

import copy
import inspect
import math
from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from pytorch_optimizer import SAM, Kron
from pytorch_optimizer.lr_scheduler import get_wsd_schedule
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

from lrsc.datasets import Split
from lrsc.models import FCN, predict
from lrsc.seeding import derive_seed, generator

# Settings each model of a ``train_batched`` stack may have its own value of.
PER_MODEL = ("lr", "momentum", "weight_decay", "l1", "focal_gamma", "schedule", "schedule_steps", "schedule_factor",
             "schedule_at", "warmup_steps", "decay_frac", "stop_loss", "extra_steps")


# Per-step records of a training run (one row every ``record_every`` steps), in this order.
RECORDS = ("loss", "bc_loss_ratio", "bc_loss", "ba_loss", "confident_bc", "logit_norm", "param_norm")


@dataclass
class TrainResult:
    """What a training run ended with.

    steps: optimiser steps taken. converged: met the fitting criterion (100% training accuracy,
    or a training cross-entropy below ``stop_loss``) before the cap, then took its extra steps.
    fit_step: the step at which it met it (``steps`` less the extra steps; ``steps`` if never).
    diverged: ended by a non-finite loss or parameter, a dead network (every
    penultimate unit off on every training input) or a collapse (training accuracy
    fell back to chance after having learnt and stayed there). reason: one of
    ``"converged"``, ``"step cap"``, ``"non-finite"``, ``"dead network"``, ``"collapse"``.
    train_acc: training accuracy at the last evaluation (fraction in [0, 1]).
    records: ``{name: (steps // record_every,) float32 CPU tensor}`` for each of
    :data:`RECORDS`, row ``i`` taken after step ``(i + 1) * record_every`` (see :func:`step_records`).
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
    norm of a sample's logits; param_norm: L2 norm of all parameters. Row-wise reductions only,
    so every number is the same whatever the thread count and the batch-mates.
    """
    bc = conflicting.float()
    n_bc, n_ba = bc.sum(-1), (1 - bc).sum(-1)
    prob, pred = logits.softmax(-1).max(-1)
    confident_wrong = ((pred != y) & (prob > confident_prob)).float()
    sq_norm = sum(w.flatten(1).pow(2).sum(1) for w in weights)
    return torch.stack([
        losses.mean(-1), bc_loss_ratio(losses, conflicting),
        (losses * bc).sum(-1) / n_bc, (losses * (1 - bc)).sum(-1) / n_ba,
        (confident_wrong * bc).sum(-1) / n_bc, logits.norm(dim=-1).mean(-1), sq_norm.sqrt(),
    ], dim=-1)


# What a run keeps at each of its snapshot steps: model -> {name: tensor}.
Snapshot = Callable[[nn.Module], dict[str, torch.Tensor]]


class _Recorder:
    """Records of M models every ``every`` steps, and their snapshots, kept on the device."""

    def __init__(self, m: int, max_steps: int, every: int, confident_prob: float, device: torch.device,
                 snapshot: Sequence[Snapshot] | None, snapshot_steps: Sequence[int]):
        self.every, self.confident_prob = every, confident_prob
        self.hist = torch.full((m, max_steps // every, len(RECORDS)), float("nan"), device=device)
        self.snapshot, self.snapshot_steps = snapshot, set(snapshot_steps) if snapshot else set()
        self.snapshots: list[list[tuple[int, dict[str, torch.Tensor]]]] = [[] for _ in range(m)]

    def add(self, rows: torch.Tensor, step: int, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            conflicting: torch.Tensor, weights: Sequence[torch.Tensor]) -> None:
        """Record step ``step`` (1-based, just taken) of the models in ``rows`` when it is due."""
        if step % self.every == 0:
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


def stacked_kernel(model: nn.Module, optimizer: str = "sgd", asam_rho: float = 0.0) -> bool:
    """Whether ``model`` trains through the stacked FCN kernel: a bias-free :class:`FCN` with SGD
    (any momentum, weight decay, L1, focal gamma and schedule) and no ASAM. Such a model takes
    that path alone or batched."""
    return type(model) is FCN and model.head.bias is None and optimizer == "sgd" and asam_rho == 0


@lru_cache(maxsize=64)
def _multipliers(schedule: str, steps: int, horizon: int, factor: float, at: int, warmup: int,
                 decay_frac: float) -> tuple[float, ...]:
    """The LR multiplier of each of ``steps`` steps (entry s is step s + 1's), from torch's and
    pytorch-optimizer's schedulers run on a dummy optimizer, so that both training paths use
    their exact definitions. Past ``horizon`` a cosine or WSD schedule holds its final value."""
    if schedule == "constant":
        return (1.0,) * steps
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    if schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[at], gamma=factor)
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=horizon, eta_min=factor)
    else:
        decay = max(1, round(decay_frac * horizon))
        sched = get_wsd_schedule(opt, num_warmup_steps=warmup, num_stable_steps=max(0, horizon - warmup - decay),
                                 num_decay_steps=decay, min_lr_ratio=factor)
    out = []
    for step in range(steps):
        out.append(opt.param_groups[0]["lr"])
        if schedule == "step" or step < horizon:
            opt.step()
            sched.step()
    return tuple(out)


def lr_table(lr: float, steps: int, schedule: str = "constant", schedule_steps: int = 0, schedule_factor: float = 0.1,
             schedule_at: int = 1000, warmup_steps: int = 0, decay_frac: float = 0.2, max_steps: int = 0) -> torch.Tensor:
    """The LR of each of ``steps`` training steps, shape ``(steps,)`` float32 (entry s is step s + 1's).

    schedule: ``"constant"``; ``"step"`` (times ``schedule_factor`` after step ``schedule_at``);
    ``"cosine"`` (cosine annealing to ``schedule_factor * lr`` over ``schedule_steps``);
    ``"wsd"`` (warmup-stable-decay: ``warmup_steps`` of linear warmup, a constant stretch, then a
    1-sqrt decay to ``schedule_factor * lr`` over the last ``decay_frac`` of ``schedule_steps``).
    ``schedule_steps`` 0 means ``max_steps``.
    """
    horizon = schedule_steps or max_steps or steps
    mult = _multipliers(schedule, steps, horizon, schedule_factor, schedule_at, warmup_steps, decay_frac)
    return torch.tensor([lr * m for m in mult], dtype=torch.float32)


def focal_weight(logp: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-sample factor c with d(focal loss)/d(logits) = c * d(cross-entropy)/d(logits).

    The focal loss (Lin et al.) is ``(1 - p)^gamma * CE`` with p the true class's probability, so
    ``c = (1 - p)^gamma - gamma * p * (1 - p)^(gamma - 1) * log p``. logp: log-probabilities
    ``(A, B, K)``; y ``(A, B)``; gamma ``(A,)``. Returns ``(A, B)``, exactly 1 where gamma is 0.
    Both training paths scale the cross-entropy gradient by it, so they share its arithmetic.
    """
    lp = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    p = lp.exp()
    g = gamma.view(-1, 1)
    rest = (1 - p).clamp_min(torch.finfo(p.dtype).tiny)  # p rounds to 1 for well-fit samples
    c = rest.pow(g) - g * p * rest.pow(g - 1) * lp
    return torch.where(g == 0, torch.ones_like(c), c)


class _Sgd:
    """SGD with each stacked model's own momentum, weight decay (L2) and L1 penalty, in
    ``torch.optim.SGD``'s arithmetic (no dampening, no Nesterov; the L1 term ``l1 * sign(w)`` is
    added to the gradient before the weight decay's ``weight_decay * w``).

    ``plain`` when no model uses any of the three: the kernel then folds the LR into its backward
    pass and updates in place. Every other stack takes the gradients and calls :meth:`apply`,
    where a model whose settings are 0 gets the same numbers as in any other such stack.
    """

    def __init__(self, momentum: Sequence[float], weight_decay: Sequence[float], l1: Sequence[float],
                 device: torch.device):
        self.plain = not any(momentum) and not any(weight_decay) and not any(l1)
        self.uses = (any(momentum), any(weight_decay), any(l1))
        self.mu, self.wd, self.l1 = (torch.tensor(v, device=device, dtype=torch.float32)
                                     for v in (momentum, weight_decay, l1))
        self.buffers: list[torch.Tensor] | None = None

    def apply(self, weights: list[torch.Tensor], grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """Update ``weights`` in place from ``grads`` (each ``(A, ...)``, the mean-loss gradient) at ``lr`` ``(A,)``."""
        uses_mu, uses_wd, uses_l1 = self.uses
        for k, (w, g) in enumerate(zip(weights, grads)):
            shape = (-1,) + (1,) * (w.dim() - 1)
            if uses_l1:
                g.add_(w.sign() * self.l1.view(shape))
            if uses_wd:
                g.add_(w * self.wd.view(shape))
            if uses_mu:
                if self.buffers is None:
                    self.buffers = [None] * len(weights)
                if self.buffers[k] is None:
                    self.buffers[k] = g.clone()  # torch.optim.SGD's first step: the buffer is the gradient
                else:
                    self.buffers[k].mul_(self.mu.view(shape)).add_(g)
                g = self.buffers[k]
            w.sub_(g * lr.view(shape))

    def keep(self, keep: list[int]) -> None:
        """Drop the models not in ``keep`` (positions in the current stack)."""
        self.mu, self.wd, self.l1 = self.mu[keep], self.wd[keep], self.l1[keep]
        if self.buffers is not None:
            self.buffers = [None if b is None else b[keep] for b in self.buffers]


def finite_params(model: nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite."""
    return all(torch.isfinite(p).all() for p in model.parameters())


class _Monitor:
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

    def result(self, reason: str, steps: int, recorder: _Recorder, i: int) -> TrainResult:
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


def train(model: nn.Module, data: Split, *, lr: float, batch_size: int = 100, max_steps: int = 15000,
          optimizer: str = "sgd", momentum: float = 0.0, weight_decay: float = 0.0, l1: float = 0.0,
          focal_gamma: float = 0.0, asam_rho: float = 0.0, schedule: str = "constant", schedule_steps: int = 0,
          schedule_factor: float = 0.1, schedule_at: int = 1000, warmup_steps: int = 0, decay_frac: float = 0.2,
          stop_loss: float = 0.0, extra_steps: int = 0, eval_every: int = 100, collapse_patience: int = 10,
          record_every: int = 10, confident_prob: float = 0.9, seed: int = 0, progress: bool = False,
          snapshot: Snapshot | None = None, snapshot_steps: Sequence[int] = ()) -> TrainResult:
    """Train ``model`` in place on ``data`` (already on the model's device).

    optimizer: ``"sgd"`` (``momentum``), ``"adam"``, ``"adamw"`` or ``"psgd_kron"`` (PSGD with
    Kronecker-factored preconditioners, pytorch-optimizer's ``Kron``). weight_decay: L2 for SGD
    and Adam, decoupled for AdamW and PSGD-Kron. l1: an L1 penalty ``l1 * sum |w|`` on every
    weight. focal_gamma: train on the focal loss ``(1 - p)^gamma * CE`` (0: cross-entropy).
    asam_rho > 0: wrap the optimiser in ASAM (adaptive sharpness-aware minimisation,
    pytorch-optimizer's ``SAM(adaptive=True)``) of radius ``asam_rho``. The LR of each step comes
    from :func:`lr_table` (``schedule`` and its settings).

    Data order: a fresh permutation per epoch drawn from the seed's ``"data_order"`` stream.
    Training accuracy and cross-entropy are checked on the full training set every
    ``eval_every`` steps; the run is fit at the first check that finds 100% accuracy (or,
    with ``stop_loss`` > 0, a mean cross-entropy below it), then trains ``extra_steps`` more.
    Every ``record_every`` steps the :data:`RECORDS` of the minibatch are kept (the loss is
    always the cross-entropy); at each of ``snapshot_steps`` the run reaches,
    ``snapshot(model)`` is kept too. A model for which :func:`stacked_kernel` holds is
    trained by :func:`train_batched` as a stack of one, so that it gets the same numbers
    alone as in any batch.
    """
    per_model = dict(momentum=momentum, weight_decay=weight_decay, l1=l1, focal_gamma=focal_gamma, schedule=schedule,
                     schedule_steps=schedule_steps, schedule_factor=schedule_factor, schedule_at=schedule_at,
                     warmup_steps=warmup_steps, decay_frac=decay_frac, stop_loss=stop_loss, extra_steps=extra_steps)
    settings = dict(batch_size=batch_size, max_steps=max_steps, eval_every=eval_every,
                    collapse_patience=collapse_patience, record_every=record_every, confident_prob=confident_prob,
                    progress=progress, snapshot_steps=snapshot_steps)
    snapshots = [snapshot] if snapshot else None
    if stacked_kernel(model, optimizer, asam_rho):
        return train_batched([model], [data], lr=[lr], seed=[seed], snapshot=snapshots, **per_model, **settings)[0]
    return _train_torch(model, data, lr=lr, optimizer=optimizer, asam_rho=asam_rho, seed=seed, snapshot=snapshots,
                        **per_model, **settings)


@contextmanager
def _global_rngs(seed: int):
    """Seed torch's and numpy's global generators from ``seed`` for the block, then restore them:
    PSGD-Kron draws from both (its preconditioner updates), and a run must not depend on
    what ran before it in the process."""
    import numpy as np

    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "optimizer"))
        np.random.seed(derive_seed(seed, "optimizer") % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def _optimizer(params: list[nn.Parameter], name: str, lr: float, momentum: float, weight_decay: float,
               asam_rho: float) -> torch.optim.Optimizer:
    """The torch optimiser of ``train``'s settings (wrapped in ASAM when ``asam_rho`` > 0)."""
    cls, kwargs = {
        "sgd": (torch.optim.SGD, {"momentum": momentum}),
        "adam": (torch.optim.Adam, {}),
        "adamw": (torch.optim.AdamW, {}),
        "psgd_kron": (Kron, {}),
    }[name]
    if asam_rho > 0:
        return SAM(params, base_optimizer=cls, rho=asam_rho, adaptive=True, lr=lr, weight_decay=weight_decay, **kwargs)
    return cls(params, lr=lr, weight_decay=weight_decay, **kwargs)


def _train_torch(model: nn.Module, data: Split, *, lr: float, batch_size: int, max_steps: int, optimizer: str,
                 momentum: float, weight_decay: float, l1: float, focal_gamma: float, asam_rho: float, schedule: str,
                 schedule_steps: int, schedule_factor: float, schedule_at: int, warmup_steps: int, decay_frac: float,
                 stop_loss: float, extra_steps: int, eval_every: int, collapse_patience: int, record_every: int,
                 confident_prob: float, seed: int, progress: bool, snapshot: Sequence[Snapshot] | None,
                 snapshot_steps: Sequence[int]) -> TrainResult:
    """``train`` with autograd and torch optimisers, for any model and optimiser (the reference the
    stacked kernel is tested against)."""
    device = data.x.device
    n = len(data)
    params = list(model.parameters())
    opt = _optimizer(params, optimizer, lr, momentum, weight_decay, asam_rho)
    lrs = lr_table(lr, max_steps + extra_steps, schedule, schedule_steps, schedule_factor, schedule_at, warmup_steps,
                   decay_frac, max_steps).tolist()
    gamma = torch.tensor([float(focal_gamma)], device=device)
    g = generator(seed, "data_order", device)
    recorder = _Recorder(1, max_steps + extra_steps, record_every, confident_prob, device, snapshot, snapshot_steps)
    monitor = _Monitor(data, collapse_patience, stop_loss, extra_steps)
    row = torch.zeros(1, dtype=torch.long, device=device)

    def objective(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The minibatch's training objective, its per-sample cross-entropies and its logits."""
        logits = model(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        weighted = focal_weight(logits.detach().log_softmax(-1)[None], y[None], gamma)[0] * losses if focal_gamma \
            else losses  # the cross-entropy needs no weights: keep them off the hot path
        total = weighted.mean()
        if l1:
            total = total + l1 * sum(p.abs().sum() for p in params)
        return total, losses, logits

    reason = ""
    step = 0
    bar = tqdm(total=max_steps, desc=f"lr={lr:g}", unit="step", leave=False, disable=not progress)
    model.train()
    recorder.snap(0, [model], [0])
    with _global_rngs(seed):
        while not reason:
            perm = torch.randperm(n, device=device, generator=g)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = perm[start:start + batch_size]
                x, y = data.x[idx], data.y[idx]
                for group in opt.param_groups:
                    group["lr"] = lrs[step]
                opt.zero_grad(set_to_none=True)
                total, losses, logits = objective(x, y)
                total.backward()
                if asam_rho > 0:  # ASAM: the gradient at the perturbed weights drives the step
                    opt.first_step(zero_grad=True)
                    objective(x, y)[0].backward()
                    opt.second_step()
                else:
                    opt.step()
                step += 1
                recorder.add(row, step, losses.detach()[None], logits.detach()[None], y[None],
                             data.conflicting[idx][None], [p.detach()[None] for p in params])
                recorder.snap(step, [model], [0])
                if step % eval_every and step not in (max_steps, monitor.deadline):
                    continue
                bar.update(eval_every)
                finite = bool(recorder.finite(row, step, eval_every)) and finite_params(model)
                acc, loss, alive = 0.0, float("inf"), False
                if finite:
                    feats, logits = predict(model, data.x)
                    acc, alive = (logits.argmax(1) == data.y).float().mean().item(), bool(feats.any())
                    loss = F.cross_entropy(logits, data.y).item()
                reason = monitor.check(finite, acc, loss, alive, step, at_cap=step >= max_steps)
                bar.set_postfix(train_acc=f"{monitor.train_acc:.4f}")
                if reason:
                    break
    bar.close()
    return monitor.result(reason, step, recorder, 0)


# One step of A <= M stacked models: (weights, x (A, B, ...), y (A, B), scale (A,), focal gamma (A,) or
# None, in_place) -> per-sample cross-entropies (A, B), logits (A, B, K) and, unless in place, the
# gradients. In place (plain SGD), scale is each model's lr / B and the weights (a list of (A, *shape)
# tensors) take the step; otherwise scale is 1 / B and the mean-loss gradients come back, for an
# :class:`_Sgd` to apply.
Step = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None", bool],
                tuple[torch.Tensor, torch.Tensor, "list[torch.Tensor] | None"]]
# Forward pass of M stacked models: (weights, x (M, N, ...)) -> (features (M, N, d), logits (M, N, K)).
Forward = Callable[[list[torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _StackedFcn:
    """Forward pass (a :data:`Forward`) and SGD step (a :data:`Step`) of M stacked bias-free
    FCNs, the backward pass written out as batched matmuls.

    At parity size (2x200 units, batch 100) autograd's bookkeeping costs about as much as the
    arithmetic, and so does allocating: each fresh (M, B, width) activation is a new mapping
    whose pages fault in on first touch. So every matmul here writes into a buffer kept
    between calls, and each weight is updated in place with one ``baddbmm_``.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int], torch.Tensor] = {}

    def _buffer(self, key: tuple[str, int], like: torch.Tensor, *shape: int) -> torch.Tensor:
        """A ``shape`` tensor in the buffer named ``key``, grown when too small; its old content is garbage."""
        size = math.prod(shape)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < size:
            buf = self._buffers[key] = like.new_empty(size)
        return buf[:size].view(shape)

    def _activations(self, weights: list[torch.Tensor], x: torch.Tensor, use: str) -> list[torch.Tensor]:
        """Each layer's input, then the logits; x ``(M, N, ...)``, each ``(M, N, width)``."""
        acts = [x.flatten(2)]
        for layer, w in enumerate(weights):
            out = self._buffer((use, layer), w, *acts[-1].shape[:2], w.shape[1])
            acts.append(torch.bmm(acts[-1], w.transpose(1, 2), out=out))
            if layer < len(weights) - 1:
                acts[-1].relu_()
        return acts

    def forward(self, weights: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits, valid until the next call (they live in its buffers)."""
        *_, feats, logits = self._activations(weights, x, "forward")
        return feats, logits

    def step(self, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor,
             gamma: torch.Tensor | None, in_place: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """A :data:`Step`. weights: hidden layers then head, each ``(A, out, in)``; x ``(A, B, ...)``;
        y ``(A, B)``. The logits are valid until the next call."""
        *acts, logits = self._activations(weights, x, "step")
        logp = logits.log_softmax(-1)
        target = y.unsqueeze(-1)
        losses = -logp.gather(-1, target).squeeze(-1)
        weight = None if gamma is None else focal_weight(logp, y, gamma)
        # d(lr * mean cross-entropy)/d(logits) = lr / B * (softmax - one-hot): the LR rides along the backward pass
        delta = logp.exp_().scatter_add_(-1, target, torch.full_like(target, -1, dtype=logp.dtype))
        if weight is not None:
            delta.mul_(weight.unsqueeze(-1))
        delta.mul_(scale.view(-1, 1, 1))
        grads: list[torch.Tensor] = []
        for layer in reversed(range(len(weights))):
            w, below = weights[layer], None
            if layer:  # the gradient below, taken before w moves; threshold_backward is ReLU's backward
                below = torch.bmm(delta, w, out=self._buffer(("delta", layer), w, *acts[layer].shape))
                torch.ops.aten.threshold_backward.grad_input(below, acts[layer], 0, grad_input=below)
            if in_place:
                w.baddbmm_(delta.transpose(1, 2), acts[layer], alpha=-1.0)
            else:
                grads.insert(0, torch.bmm(delta.transpose(1, 2), acts[layer]))
            delta = below
        return losses, logits, None if in_place else grads


class _FeaturesAndLogits(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net.features(x)
        return h, self.net.head(h)


def _autograd_path(model: nn.Module) -> tuple[Step, Forward]:
    """SGD step and forward pass of M stacked copies of any buffer-free ``model`` (the CNN, an
    FCN with bias): ``vmap`` runs the model's own code on each model's weights; autograd does
    the backward."""
    template = _FeaturesAndLogits(copy.deepcopy(model).to("meta"))
    names = [name for name, _ in template.named_parameters()]
    forward = vmap(lambda params, x: functional_call(template, dict(zip(names, params)), (x,)))

    def step(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor,
             gamma: torch.Tensor | None, in_place: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        params = [w.detach().requires_grad_() for w in weights]
        logits = forward(params, x)[1]
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        weight = scale[:, None] if gamma is None else focal_weight(logits.detach().log_softmax(-1), y, gamma) * scale[:, None]
        grads = torch.autograd.grad((losses * weight).sum(), params)  # already times scale
        if not in_place:
            return losses.detach(), logits.detach(), list(grads)
        for w, grad in zip(weights, grads):
            w.sub_(grad)
        return losses.detach(), logits.detach(), None

    return step, forward


@torch.no_grad()
def _stacked_stats(forward: Forward, weights: list[torch.Tensor], xs: torch.Tensor, ys: torch.Tensor,
                   src: torch.Tensor) -> tuple[list[float], list[float], list[bool]]:
    """Full-training-set accuracy and mean cross-entropy of each stacked model, and whether any
    of its penultimate units fires on any input: one batched forward pass over chunks of every model's own
    training set ``xs[src[i]]`` (xs ``(K, n, ...)``, src ``(A,)``)."""
    n, a = xs.shape[1], len(src)
    widest = max(xs[0, 0].numel(), max(w.shape[1] for w in weights))
    # near 16 MB activations for a stack of 24; the chunk does not depend on the stack's size, so
    # neither do the numbers
    chunk = max(1, 2**22 // (24 * widest))
    correct = torch.zeros(a, device=xs.device)
    loss = torch.zeros(a, device=xs.device)
    alive = torch.zeros(a, dtype=torch.bool, device=xs.device)
    for start in range(0, n, chunk):
        feats, logits = forward(weights, xs[src, start:start + chunk])
        y = ys[src, start:start + chunk]
        correct += (logits.argmax(-1) == y).sum(1)
        loss -= logits.log_softmax(-1).gather(-1, y.unsqueeze(-1)).squeeze(-1).sum(1)
        feats = feats.flatten(1)
        alive |= (feats.amax(1) > 0) | (feats.amin(1) < 0)  # much faster than a (M, N d) mask's any()
    return (correct / n).tolist(), (loss / n).tolist(), alive.tolist()


def _bind(model: nn.Module, weights: list[torch.Tensor], i: int) -> None:
    """Make ``model``'s parameters views of the ``i``-th slice of the stacked ``weights``."""
    for p, w in zip(model.parameters(), weights):
        p.data = w[i]


def _per_model(name: str, value, m: int) -> list:
    """``value`` for each of ``m`` models: a sequence of ``m`` values, or one value for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != m:
            raise ValueError(f"{name}: need one value per model ({m}), got {len(value)}")
        return list(value)
    return [value] * m


def train_batched(models: Sequence[nn.Module], data: Sequence[Split], *, lr: Sequence[float], seed: Sequence[int],
                  batch_size: int = 100, max_steps: int = 15000, eval_every: int = 100, collapse_patience: int = 10,
                  record_every: int = 10, confident_prob: float = 0.9, progress: bool = False,
                  snapshot: Sequence[Snapshot] | None = None, snapshot_steps: Sequence[int] = (),
                  **per_model) -> list[TrainResult]:
    """Train M models of one buffer-free architecture at once with SGD, each exactly as ``train`` would.

    Model i is trained in place at ``lr[i]`` on ``data[i]``, in the data order of ``seed[i]``,
    and stops on its own by ``train``'s rules (``snapshot[i]`` is model i's, see ``train``); it
    then leaves the stack (the others go on, and get faster) with its weights, records and
    snapshots as of that step. ``per_model`` holds the rest of :data:`PER_MODEL` (momentum,
    weight decay, L1, focal gamma, the schedule and the stopping settings), each one value for
    every model or a sequence with one per model. ``data[i]`` are on one device, with equal
    sizes and shapes; models that share a Split share its memory.

    Bias-free FCNs (the stacked kernel) get exactly the numbers ``train`` gives them, provided
    their batch-mates are all plain SGD (no momentum, weight decay or L1) or all not (see
    :class:`_Sgd`; ``lrsc.sweep`` groups them so); other models (``vmap`` over their own code)
    agree with ``train`` to float rounding only, and their numbers depend on their batch-mates
    (a grouped convolution sums in another order).
    """
    m = len(models)
    if not (len(data) == len(lr) == len(seed) == m):
        raise ValueError(f"need one Split, lr and seed per model; got {len(data)}, {len(lr)}, {len(seed)} for {m} models")
    unknown = set(per_model) - set(PER_MODEL)
    if unknown:
        raise ValueError(f"train_batched: unknown settings {sorted(unknown)}; per-model settings are {PER_MODEL}")
    if any(len(list(model.buffers())) for model in models):
        raise ValueError("train_batched needs buffer-free models (no BatchNorm); train them one at a time")
    device = data[0].x.device
    n = len(data[0])
    if any(len(d) != n for d in data) or batch_size > n:
        raise ValueError(f"need training sets of one size, at least batch_size={batch_size}; got {[len(d) for d in data]}")
    defaults = {k: v.default for k, v in inspect.signature(train).parameters.items() if k in PER_MODEL}
    each = {k: _per_model(k, per_model.get(k, defaults[k]), m) for k in PER_MODEL if k != "lr"}
    distinct = list({id(d.x): d for d in data}.values())
    which = torch.tensor([[id(s.x) for s in distinct].index(id(d.x)) for d in data], device=device)
    xs = torch.stack([d.x for d in distinct])  # (K, n, ...) for K distinct training sets
    ys = torch.stack([d.y for d in distinct])
    # every sample of every distinct set, one row each, and buffers for a step's minibatches
    tables = [t.flatten(0, 1) for t in (xs, ys, torch.stack([d.conflicting for d in distinct]))]
    batch_bufs = [t.new_empty(m * batch_size, *t.shape[1:]) for t in tables]

    weights = [torch.stack([p.detach() for p in ps]) for ps in zip(*(model.parameters() for model in models))]
    if stacked_kernel(models[0]):
        fcn = _StackedFcn()
        step_fn, forward = fcn.step, fcn.forward
    else:
        step_fn, forward = _autograd_path(models[0])
    for i, model in enumerate(models):
        _bind(model, weights, i)
        model.train()
    gens = [generator(s, "data_order", device) for s in seed]
    total_steps = max_steps + max(each["extra_steps"])
    schedules = ("schedule", "schedule_steps", "schedule_factor", "schedule_at", "warmup_steps", "decay_frac")
    lrs = torch.stack([lr_table(lr[i], total_steps, *(each[k][i] for k in schedules), max_steps=max_steps)
                       for i in range(m)]).to(device)  # (M, steps)
    sgd = _Sgd(each["momentum"], each["weight_decay"], each["l1"], device)
    # plain SGD folds lr / B into the backward pass; otherwise the gradient is the mean's (1 / B)
    scales = lrs / batch_size if sgd.plain else torch.full((m, 1), 1 / batch_size, device=device)
    gamma = torch.tensor(each["focal_gamma"], device=device, dtype=torch.float32) if any(each["focal_gamma"]) else None
    monitors = [_Monitor(d, collapse_patience, stop, extra)
                for d, stop, extra in zip(data, each["stop_loss"], each["extra_steps"])]
    recorder = _Recorder(m, total_steps, record_every, confident_prob, device, snapshot, snapshot_steps)
    results: list[TrainResult | None] = [None] * m
    active = list(range(m))  # the models still training, in the order of the stacked weights
    rows = torch.arange(m, device=device)
    deadlines: set[int] = set()  # steps at which a fit model's extra steps end
    steps_per_epoch = n // batch_size
    step = 0
    bar = tqdm(total=max_steps, desc=f"{m} models", unit="step", leave=False, disable=not progress)
    recorder.snap(0, models, active)
    while active:
        if step % steps_per_epoch == 0:
            perms = torch.stack([torch.randperm(n, device=device, generator=gens[i]) for i in active])
        start = step % steps_per_epoch * batch_size
        flat = (which[rows, None] * n + perms[:, start:start + batch_size]).view(-1)  # (A B,) rows of the tables
        x, y, conflicting = (torch.index_select(t, 0, flat, out=buf[:len(flat)]).view(len(rows), batch_size, *t.shape[1:])
                             for t, buf in zip(tables, batch_bufs))
        scale = scales[rows, step if sgd.plain else 0]
        losses, logits, grads = step_fn(weights, x, y, scale, None if gamma is None else gamma[rows], sgd.plain)
        if grads is not None:
            sgd.apply(weights, grads, lrs[rows, step])
        step += 1
        recorder.add(rows, step, losses, logits, y, conflicting, weights)
        recorder.snap(step, models, active)
        if step % eval_every and step != max_steps and step not in deadlines:
            continue
        bar.update(eval_every)
        finite = recorder.finite(rows, step, eval_every)
        for w in weights:
            finite &= torch.isfinite(w.flatten(1)).all(1)
        accs, train_losses, alive = _stacked_stats(forward, weights, xs, ys, which[rows])
        for i, ok, acc, loss, on in zip(active, finite.tolist(), accs, train_losses, alive):
            reason = monitors[i].check(ok, acc, loss, on, step, at_cap=step >= max_steps)
            if reason:
                results[i] = monitors[i].result(reason, step, recorder, i)
                for p in models[i].parameters():
                    p.data = p.data.clone()  # off the stack, which moves on without this model
        keep = [j for j, i in enumerate(active) if results[i] is None]
        if len(keep) < len(active):
            active = [active[j] for j in keep]
            rows = torch.tensor(active, device=device, dtype=torch.long)
            weights = [w[keep] for w in weights]
            sgd.keep(keep)
            perms = perms[keep]
            for j, i in enumerate(active):
                _bind(models[i], weights, j)
            bar.set_postfix(training=len(active))
        deadlines = {monitors[i].deadline for i in active} - {None}
    bar.close()
    return results
