"""What lrsc's one-model training loop costs beyond the SGD steps themselves.

A tiny model (10 -> 32 -> 2) does almost no arithmetic per step, so its training time is
nearly all per-step overhead: Python, operator dispatch, allocations, waits for the host.
:func:`time_overhead` trains it with :func:`lrsc.train.train` (its evaluations and records at
their default intervals, as in a sweep) and with a plain torch loop taking the
same minibatches in the same order, in alternating rounds in one process.
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from lrsc import models
from lrsc.bench.clock import now
from lrsc.datasets import Split
from lrsc.seeding import generator
from lrsc.settings import TrainSettings
from lrsc.train import train

IN, WIDTH, CLASSES = 10, 32, 2  # the tiny model's sizes: inputs, hidden units, classes
LR, BATCH, SAMPLES = 0.05, 100, 1000  # learning rate, minibatch size, training samples


def tiny_model(bias: bool, device: torch.device | str = "cpu") -> nn.Module:
    """The 10-32-2 ReLU network, the same initial weights on every call. With ``bias`` it
    trains through lrsc's autograd loop; without, through the stacked kernel (a stack of one)."""
    torch.manual_seed(0)
    return models.build("fcn", input_shape=(IN,), num_classes=CLASSES, depth=1, width=WIDTH, bias=bias).to(device)


def tiny_data(n: int = SAMPLES, device: torch.device | str = "cpu") -> Split:
    """``n`` Gaussian samples whose class is the sign of the first input, 20% of labels flipped
    (so that no run reaches 100% training accuracy and stops early); the bias label is the
    sign of the second input."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, IN, generator=g)
    y = (x[:, 0] > 0).long()
    y = torch.where(torch.rand(n, generator=g) < 0.2, 1 - y, y)
    return Split(x, y, (x[:, 1] > 0).long(), CLASSES, 2).to(device)


def plain_sgd(model: nn.Module, data: Split, steps: int, seed: int = 0) -> None:
    """Train ``model`` for ``steps`` minibatch SGD steps (LR 0.05, batch 100) in a plain torch
    loop: a permutation per epoch from the same generator as ``lrsc.train.train``'s data order,
    ``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD.step()``."""
    device, n = data.x.device, len(data)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    order = generator(seed, "data_order", device)
    step = 0
    while step < steps:
        perm = torch.randperm(n, device=device, generator=order)
        for start in range(0, n - BATCH + 1, BATCH):
            idx = perm[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
            opt.step()
            step += 1
            if step == steps:
                return


def lrsc_sgd(model: nn.Module, data: Split, steps: int, seed: int = 0) -> None:
    """Train ``model`` for ``steps`` steps with ``lrsc.train.train`` (evaluation and record
    intervals at their defaults); raises RuntimeError if the run stops before the last step."""
    result = train(model, data, TrainSettings(lr=LR, batch_size=BATCH, max_steps=steps), seed=seed)
    if result.steps != steps:
        raise RuntimeError(f"the overhead run stopped after {result.steps} of {steps} steps ({result.reason})")


def time_overhead(bias: bool, steps: int, rounds: int, device: torch.device | str = "cpu"
                  ) -> tuple[float, float, list[float]]:
    """Median seconds to train the tiny model for ``steps`` steps with lrsc and with the plain
    loop, over ``rounds`` alternating rounds (after one untimed warm-up of each), and each
    round's ratio lrsc / plain."""
    device = torch.device(device)
    data = tiny_data(device=device)
    times: dict[str, list[float]] = {"lrsc": [], "plain": []}
    for r in range(rounds + 1):
        for name, fit in (("lrsc", lrsc_sgd), ("plain", plain_sgd)):
            model = tiny_model(bias, device)
            start = now(device)
            fit(model, data, steps)
            if r:
                times[name].append(now(device) - start)
    ours, theirs = times["lrsc"], times["plain"]
    return statistics.median(ours), statistics.median(theirs), [o / t for o, t in zip(ours, theirs)]
