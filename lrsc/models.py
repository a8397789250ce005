"""Models, built by name: ``models.build("fcn", input_shape=(16,), num_classes=2, width=200)``.

Every model exposes ``features(x)``, its penultimate representation (post-activation),
and ``head``, the output layer that pruning never touches.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import nn

from lrsc.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DATA_ARGS = ("input_shape", "num_classes")  # supplied by the dataset, not by the user


def register(name: str):
    def add(fn):
        _REGISTRY[name] = fn
        return fn

    return add


def names() -> list[str]:
    return sorted(_REGISTRY)


def _builder(name: str):
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def params_of(name: str) -> dict[str, inspect.Parameter]:
    """The user-tunable parameters of model ``name``, by name."""
    sig = inspect.signature(_builder(name))
    return {k: p for k, p in sig.parameters.items() if k not in _DATA_ARGS}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **params) -> nn.Module:
    """Build model ``name`` for inputs of shape ``input_shape`` (no batch dim)."""
    from lrsc.config import check_params

    check_params(f"model {name!r}", params, params_of(name))
    return _builder(name)(input_shape=tuple(input_shape), num_classes=num_classes, **params)


class FCN(nn.Module):
    """Fully connected ReLU network: ``depth`` hidden layers of ``width`` units, then ``head``.

    Input of any shape ``(n, *input_shape)`` is flattened; output is ``(n, num_classes)`` logits.
    """

    def __init__(self, in_features: int, num_classes: int, depth: int, width: int, bias: bool):
        super().__init__()
        dims = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], num_classes, bias=bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation, post-ReLU; shape ``(n, width)``."""
        h = x.flatten(1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register("fcn")
def fcn(*, input_shape: tuple[int, ...], num_classes: int, depth: int = 2, width: int = 200, bias: bool = False) -> FCN:
    """FCN with ``depth`` hidden layers of ``width`` ReLU units; ``bias`` toggles bias terms (paper: off)."""
    if depth < 1 or width < 1:
        raise ConfigError(f"fcn needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
    return FCN(math.prod(input_shape), num_classes, depth, width, bias)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``(n, d)`` and logits ``(n, num_classes)`` of ``x``, in chunks.

    Runs in eval mode and restores the model's previous mode.
    """
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for i in range(0, len(x), chunk):
        h = model.features(x[i:i + chunk])
        feats.append(h)
        logits.append(model.head(h))
    model.train(was_training)
    return torch.cat(feats), torch.cat(logits)
