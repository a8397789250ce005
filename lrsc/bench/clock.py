"""The benchmark's clock and its yardstick: the dense matmul speed every FLOP rate is compared with."""
from __future__ import annotations

import math
import time

import torch

MATMUL_SIZE = 2000  # rows = columns of the dense product whose speed is the yardstick

def now(device: torch.device) -> float:
    """The clock in seconds, read once the device has finished the work queued on it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def matmul_flops(size: int = MATMUL_SIZE, device: torch.device | str = "cpu") -> float:
    """Dense float32 matmul speed on ``device``, FLOP/s (best of 10 products of ``size`` x ``size``)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device)
    a @ a
    best = math.inf
    for _ in range(10):
        start = now(device)
        a @ a
        best = min(best, now(device) - start)
    return 2 * size**3 / best
