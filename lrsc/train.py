"""Plain SGD training until 100% training accuracy, a step cap, or divergence.

One readable loop in the spirit of nanoGPT. The training set lives on the model's
device and is batched by index (as in airbench); per-step records stay on the device
and are read once at the end, so the hot loop never waits for the host.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lrsc.datasets import Split
from lrsc.models import predict
from lrsc.seeding import generator


@dataclass
class TrainResult:
    """What a training run ended with.

    steps: SGD steps taken. converged: reached 100% training accuracy before the cap.
    diverged: ended by a non-finite loss or parameter, a dead network (every
    penultimate unit off on every training input) or a collapse (training accuracy
    fell back to chance after having learnt and stayed there). reason: one of
    ``"converged"``, ``"step cap"``, ``"non-finite"``, ``"dead network"``, ``"collapse"``.
    train_acc: training accuracy at the last evaluation (fraction in [0, 1]).
    loss, bc_loss_ratio: per-step minibatch mean loss and BC loss ratio (SPEC §4),
    float32 CPU tensors of shape ``(steps,)``.
    """

    steps: int
    converged: bool
    diverged: bool
    reason: str
    train_acc: float
    loss: torch.Tensor
    bc_loss_ratio: torch.Tensor


def bc_loss_ratio(losses: torch.Tensor, conflicting: torch.Tensor) -> torch.Tensor:
    """Sum of bias-conflicting samples' losses over the sum of all losses in a minibatch.

    losses: per-sample losses, shape ``(B,)``; conflicting: boolean mask, shape ``(B,)``.
    Returns a 0-dim tensor (0 when the minibatch holds no BC sample).
    """
    return (losses * conflicting).sum() / losses.sum()


def _finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def train(model: nn.Module, data: Split, *, lr: float, batch_size: int = 100, max_steps: int = 15000,
          momentum: float = 0.0, weight_decay: float = 0.0, eval_every: int = 100,
          collapse_patience: int = 10, seed: int = 0, progress: bool = False) -> TrainResult:
    """Train ``model`` in place with constant-LR SGD on ``data`` (already on the model's device).

    Data order: a fresh permutation per epoch drawn from the seed's ``"data_order"`` stream.
    Training accuracy is checked on the full training set every ``eval_every`` steps; the
    run stops at the first check that finds 100% (so ``steps`` has that resolution).
    """
    device = data.x.device
    n = len(data)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    g = generator(seed, "data_order", device)
    loss_hist = torch.zeros(max_steps, device=device)
    ratio_hist = torch.zeros(max_steps, device=device)
    chance = torch.bincount(data.y).max().item() / n  # accuracy of the majority-class guess
    best_acc, at_chance, train_acc = 0.0, 0, 0.0
    reason = "step cap"
    step = 0
    bar = tqdm(total=max_steps, desc=f"lr={lr:g}", unit="step", leave=False, disable=not progress)
    model.train()
    while step < max_steps and reason == "step cap":
        perm = torch.randperm(n, device=device, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start:start + batch_size]
            losses = F.cross_entropy(model(data.x[idx]), data.y[idx], reduction="none")
            loss = losses.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_hist[step] = loss.detach()
            ratio_hist[step] = bc_loss_ratio(losses.detach(), data.conflicting[idx])
            step += 1
            if step % eval_every and step < max_steps:
                continue
            bar.update(eval_every)
            if not (torch.isfinite(loss_hist[max(0, step - eval_every):step]).all() and _finite(model)):
                reason = "non-finite"
                break
            feats, logits = predict(model, data.x)
            train_acc = (logits.argmax(1) == data.y).float().mean().item()
            best_acc = max(best_acc, train_acc)
            at_chance = at_chance + 1 if best_acc > chance + 0.05 and train_acc <= chance + 0.01 else 0
            bar.set_postfix(train_acc=f"{train_acc:.4f}")
            if train_acc == 1.0:
                reason = "converged"
            elif not feats.any():
                reason = "dead network"
            elif at_chance >= collapse_patience:
                reason = "collapse"
            if reason != "step cap" or step >= max_steps:
                break
    bar.close()
    return TrainResult(
        steps=step,
        converged=reason == "converged",
        diverged=reason in ("non-finite", "dead network", "collapse"),
        reason=reason,
        train_acc=train_acc,
        loss=loss_hist[:step].float().cpu(),
        bc_loss_ratio=ratio_hist[:step].float().cpu(),
    )
