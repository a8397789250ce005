"""How fast minibatches are fetched: lrsc's index-based path against a ``DataLoader``."""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, TensorDataset

from lrsc.bench.clock import now


def time_data_path(n: int, input_shape: tuple[int, ...], batch_size: int = 100, repeats: int = 3,
                   device: torch.device | str = "cpu") -> tuple[float, float]:
    """Seconds per epoch (best of ``repeats``) to fetch every minibatch of ``n`` samples held on
    ``device``: lrsc's path (one permutation, then index the device tensors) and a DataLoader
    over a TensorDataset."""
    device = torch.device(device)
    x, y = torch.randn(n, *input_shape, device=device), torch.randint(2, (n,), device=device)
    g = torch.Generator(device=device).manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))  # a DataLoader shuffles on the CPU

    def ours() -> None:
        perm = torch.randperm(n, generator=g, device=device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start:start + batch_size]
            x[idx], y[idx]

    def theirs() -> None:
        for _ in loader:
            pass

    times = []
    for fetch in (ours, theirs):
        best = math.inf
        for _ in range(repeats):
            start = now(device)
            fetch()
            best = min(best, now(device) - start)
        times.append(best)
    return times[0], times[1]
