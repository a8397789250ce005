"""Pruning: structured (whole neurons, by L1 norm, Li et al. 2017) and unstructured magnitude.

Both return a pruned *copy*; the output layer (``model.head``) is never pruned.
A pruned neuron has its incoming weight row (and bias) set to zero, so after the ReLU
it outputs exactly zero on every input.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from lrsc.errors import ConfigError


def prunable_layers(model: nn.Module) -> list[nn.Linear]:
    """Every ``nn.Linear`` of ``model`` except its output layer ``model.head``."""
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.head]


def _check_fraction(fraction: float) -> None:
    if not 0 <= fraction <= 1:
        raise ConfigError(f"pruning fraction must lie in [0, 1], got {fraction}")


@torch.no_grad()
def prune_structured(model: nn.Module, fraction: float) -> nn.Module:
    """Copy of ``model`` with ``round(fraction * units)`` neurons of every prunable layer
    zeroed: those whose incoming weights have the smallest L1 norm (ties: lowest index)."""
    _check_fraction(fraction)
    pruned = copy.deepcopy(model)
    for layer in prunable_layers(pruned):
        k = round(fraction * layer.out_features)
        drop = torch.argsort(layer.weight.abs().sum(1), stable=True)[:k]
        layer.weight[drop] = 0
        if layer.bias is not None:
            layer.bias[drop] = 0
    return pruned


@torch.no_grad()
def prune_magnitude(model: nn.Module, fraction: float) -> nn.Module:
    """Copy of ``model`` with the ``round(fraction * size)`` smallest-magnitude weights of
    every prunable layer zeroed (unstructured; the supplement's Fig. 22 alternative)."""
    _check_fraction(fraction)
    pruned = copy.deepcopy(model)
    for layer in prunable_layers(pruned):
        w = layer.weight.view(-1)
        w[torch.argsort(w.abs(), stable=True)[: round(fraction * w.numel())]] = 0
    return pruned


METHODS: dict[str, Callable[[nn.Module, float], nn.Module]] = {
    "structured": prune_structured,
    "magnitude": prune_magnitude,
}
