"""The training cases of the benchmark, their data and models, and how long training them takes.

Every case is M models of one architecture trained for a fixed number of SGD steps at batch
100 with one evaluation, at the end (``eval_every = max_steps``), so that both paths do the
same work: one after another with :func:`lrsc.train.train` and at once with
:func:`lrsc.stacked.train_batched`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lrsc import datasets, models
from lrsc.bench.clock import now
from lrsc.datasets import Split
from lrsc.settings import TrainSettings
from lrsc.stacked import train_batched
from lrsc.train import train

BATCH = 100  # samples per SGD step in every case
_SGD_NAMES = {"momentum": "momentum {:g}", "weight_decay": "L2", "l1": "L1"}  # as a case's label names them


@dataclass(frozen=True)
class Case:
    """M models of one architecture (``model``: ``"fcn"``, two hidden layers of ``width``
    units, or ``"cnn"``, ``width`` a channel multiplier) trained for ``steps`` SGD steps at
    batch 100 on ``n_train`` samples of ``input_shape``; ``name`` says what data they mimic."""

    name: str
    models: int
    steps: int
    input_shape: tuple[int, ...]
    width: float
    num_classes: int
    n_train: int
    model: str = "fcn"
    sgd: tuple[tuple[str, float], ...] = ()  # SGD settings besides the LR, e.g. (("momentum", 0.9),)

    @property
    def tag(self) -> str:
        """The case's part of a JSON key, e.g. ``cnn_m8_w0125`` for 8 CNNs of width 0.125."""
        return f"{self.model}_m{self.models}_w{self.width:g}".replace(".", "")

    @property
    def layers(self) -> str:
        """An FCN's layer sizes, input to output, e.g. ``16-200-200-2``."""
        return "-".join(str(n) for n in (math.prod(self.input_shape), int(self.width), int(self.width),
                                         self.num_classes))

    @property
    def label(self) -> str:
        """What the case trains, e.g. ``parity 16-200-200-2, momentum 0.9 + L2 + L1``."""
        arch = self.layers if self.model == "fcn" else f"{self.model.upper()} width {self.width:g}"
        extra = " + ".join(_SGD_NAMES[k].format(v) for k, v in self.sgd)
        return f"{self.name} {arch}" + (f", {extra}" if extra else "")

    @property
    def parity(self) -> bool:
        """Whether the case trains on parity data (16 inputs, drawn by ``lrsc.datasets``)."""
        return self.input_shape == (16,)

    def settings(self, lr: float) -> TrainSettings:
        """The case's training settings at learning rate ``lr``."""
        return TrainSettings.from_config({"lr": lr, "batch_size": BATCH, "max_steps": self.steps,
                                          "eval_every": self.steps, **dict(self.sgd)})


def default_cases(quick: bool) -> list[Case]:
    """The training cases: parity FCNs (8 and 24 of them, and 8 with momentum and penalties),
    Colored-MNIST-sized FCNs at two widths and the CNN at two widths. ``quick`` trains fewer
    steps, and the Colored-MNIST-sized models evaluate on fewer samples."""
    s, n, cnn, n_cnn = (50, 500, 2, 100) if quick else (300, 2000, 30, 200)
    return [
        Case("parity", 8, s, (16,), 200, 2, 10000),
        Case("parity", 24, s, (16,), 200, 2, 10000),
        Case("parity", 8, s, (16,), 200, 2, 10000, sgd=(("momentum", 0.9), ("weight_decay", 1e-4), ("l1", 1e-5))),
        Case("Colored-MNIST size", 8, s // 5, (3, 28, 28), 256, 10, n),
        Case("Colored-MNIST size", 4, s // 10, (3, 28, 28), 1024, 10, n),
        Case("Colored-MNIST size", 8, cnn, (3, 28, 28), 0.125, 10, n_cnn, "cnn"),
        Case("Colored-MNIST size", 8, cnn, (3, 28, 28), 0.25, 10, n_cnn, "cnn"),
    ]


def case_data(case: Case, device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format) -> list[Split]:
    """Three training sets (as three seeds of a sweep) on ``device``; model i trains on set i % 3."""
    if case.parity:
        sets = [datasets.build("parity", seed=s, n_train=case.n_train, n_test=1)[0] for s in range(3)]
    else:
        g = torch.Generator().manual_seed(0)
        sets = []
        for _ in range(3):
            y = torch.randint(case.num_classes, (case.n_train,), generator=g)
            x = torch.rand(case.n_train, *case.input_shape, generator=g).contiguous(memory_format=memory_format)
            sets.append(Split(x, y, y.clone(), case.num_classes, case.num_classes))
    sets = [d.to(device) for d in sets]
    return [sets[i % 3] for i in range(case.models)]


def case_models(case: Case, device: torch.device,
                memory_format: torch.memory_format = torch.contiguous_format) -> list[nn.Module]:
    """The case's M models, the same initial weights on every call."""
    torch.manual_seed(0)
    return [models.build(case.model, input_shape=case.input_shape, num_classes=case.num_classes, width=case.width)
            .to(device, memory_format=memory_format) for _ in range(case.models)]


def _lrs(m: int) -> list[float]:
    return [0.01 * (i + 1) for i in range(m)]  # small enough that no model stops early


def time_training(case: Case, repeats: int, device: torch.device) -> tuple[float, float, list[float]]:
    """Median seconds to train the case's M models one after another with ``train`` and at
    once with ``train_batched``, over ``repeats`` alternating rounds, and each round's ratio
    (one after another / at once)."""
    data = case_data(case, device)
    settings = [case.settings(lr) for lr in _lrs(case.models)]
    seeds = list(range(case.models))
    sequential, batched = [], []
    for _ in range(repeats):
        nets = case_models(case, device)
        start = now(device)
        for net, d, s, seed in zip(nets, data, settings, seeds):
            train(net, d, s, seed=seed)
        sequential.append(now(device) - start)
        nets = case_models(case, device)
        start = now(device)
        train_batched(nets, data, settings, seed=seeds)
        batched.append(now(device) - start)
    return statistics.median(sequential), statistics.median(batched), [s / b for s, b in zip(sequential, batched)]


def time_channels_last(case: Case, repeats: int, device: torch.device) -> tuple[float, float, list[float]]:
    """Median seconds per step of one of the case's models trained alone with ``train``
    (``case.steps`` steps and the final evaluation), its weights and inputs in the default
    (contiguous, NCHW) layout and in ``torch.channels_last`` (NHWC), over ``repeats``
    alternating rounds, and each round's ratio contiguous / channels_last."""
    one = replace(case, models=1)
    data = {fmt: case_data(one, device, fmt)[0] for fmt in (torch.contiguous_format, torch.channels_last)}
    times: dict[torch.memory_format, list[float]] = {fmt: [] for fmt in data}
    for _ in range(repeats):
        for fmt, d in data.items():
            net = case_models(one, device, fmt)[0]
            start = now(device)
            train(net, d, one.settings(0.01))
            times[fmt].append((now(device) - start) / case.steps)
    plain, last = times[torch.contiguous_format], times[torch.channels_last]
    return statistics.median(plain), statistics.median(last), [p / c for p, c in zip(plain, last)]


def batch_mate_difference(case: Case, steps: int, device: torch.device) -> float:
    """Largest difference in any weight between the first of the case's models trained alone
    with ``train`` and the same model (same initial weights, learning rate, seed and data)
    trained by ``train_batched`` in a stack of four, for ``steps`` steps. It is 0 when the
    model's arithmetic does not depend on its batch-mates."""
    four = replace(case, models=4, steps=steps)
    data = case_data(four, device)
    settings = [four.settings(lr) for lr in _lrs(4)]
    alone = case_models(four, device)[0]
    train(alone, data[0], settings[0], seed=0)
    stacked = case_models(four, device)
    train_batched(stacked, data, settings, seed=list(range(4)))
    return max((a - b).abs().max().item() for a, b in zip(alone.parameters(), stacked[0].parameters()))


def forward_flops(case: Case) -> int:
    """Matmul and convolution FLOPs (2 per multiply-add) of one sample's forward pass through
    one of the case's models, counted by torch's ``FlopCounterMode`` (pooling, ReLUs and the
    loss are not counted). For a bias-free FCN that is 2 per weight."""
    net = models.build(case.model, input_shape=case.input_shape, num_classes=case.num_classes, width=case.width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *case.input_shape))
    return counter.get_total_flops()


def step_flops(case: Case) -> int:
    """Matmul and convolution FLOPs of one model's training step at batch 100: 3 forward
    passes per sample (the forward, and the backward's two products per layer: the gradient
    of the input and that of the weight). The first layer's input gradient, which neither
    training path computes, is counted too (at most 1/3 of the first layer's share)."""
    return 3 * BATCH * forward_flops(case)


def training_flops(case: Case) -> float:
    """Matmul and convolution FLOPs of the case: its M models' :func:`step_flops` for every
    step, and the final evaluation's forward pass over each model's training set."""
    return case.models * (step_flops(case) * case.steps + forward_flops(case) * case.n_train)
