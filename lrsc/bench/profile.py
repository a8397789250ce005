"""Where the batched parity step spends its time (torch's profiler), and how fast its largest
product can run at best (the same product repeated on operands in cache)."""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.profiler import ProfilerActivity, profile

from lrsc.bench.cases import BATCH
from lrsc.bench.clock import now
from lrsc.stacked import StackedFcn


@contextmanager
def _without_fd2() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: torch's profiler (kineto) writes status lines, and
    on a machine without a GPU an error about it, straight to it, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _parity_stack(models: int, width: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights, a minibatch and the LR scale of ``models`` stacked 16-width-width-2 FCNs."""
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(models, *shape, generator=g) * 0.05 for shape in ((width, 16), (width, width), (2, width))]
    x = torch.randn(models, BATCH, 16, generator=g)
    y = torch.randint(2, (models, BATCH), generator=g)
    return weights, x, y, torch.full((models,), 1e-4)


def _profiled_times(models: int, steps: int, width: int) -> dict[str, float]:
    """Seconds the profiler attributes to the wide products, the thin products and the rest
    over ``steps`` batched steps."""
    weights, x, y, scale = _parity_stack(models, width)
    stacked = StackedFcn()
    for _ in range(5):
        stacked.step(weights, x, y, scale, None, True)
    with _without_fd2():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                stacked.step(weights, x, y, scale, None, True)
        events = prof.key_averages(group_by_input_shape=True)
    times = {"wide": 0.0, "thin": 0.0, "other": 0.0}
    for event in events:
        wide = any(list(shape[1:]) == [width, width] for shape in event.input_shapes if len(shape) == 3)
        kind = "other" if "bmm" not in event.key else "wide" if wide else "thin"
        times[kind] += event.self_cpu_time_total / 1e6
    return times


def step_profile(models: int = 24, steps: int = 50, width: int = 200) -> dict[str, float]:
    """Where the batched step of ``models`` parity FCNs (16-width-width-2, batch 100) spends
    its time, from torch's profiler (each operator's own wall time on the calling thread, its
    intra-op threads' work included):

    - ``wide``: the products with the width x width weight (that layer's forward, backward
      and weight update), and ``wide_rate``: their FLOP/s;
    - ``thin``: the other products (the 16-input layer, the 2-unit head);
    - ``other``: everything else (ReLU and its backward, softmax, losses, ...).
    The first three are fractions of the step's profiled time; they sum to 1.
    """
    times = _profiled_times(models, steps, width)
    total = sum(times.values())
    wide_flops = 3 * 2 * models * BATCH * width * width * steps
    return {**{k: t / total for k, t in times.items()}, "wide_rate": wide_flops / times["wide"]}


def hot_product_rate(models: int = 24, width: int = 200, repeats: int = 20,
                     device: torch.device | str = "cpu") -> float:
    """FLOP/s of the wide layer's forward product, (models, 100, width) x (models, width, width),
    repeated on the same operands so that they stay in cache (best of 5 rounds)."""
    device = torch.device(device)
    a, w = torch.randn(models, BATCH, width, device=device), torch.randn(models, width, width, device=device)
    out = torch.empty(models, BATCH, width, device=device)
    torch.bmm(a, w.transpose(1, 2), out=out)
    best = math.inf
    for _ in range(5):
        start = now(device)
        for _ in range(repeats):
            torch.bmm(a, w.transpose(1, 2), out=out)
        best = min(best, (now(device) - start) / repeats)
    return 2 * models * BATCH * width * width / best
