"""Datasets with spurious correlations, built by name.

``build("parity", seed=0, rho=0.05)`` returns ``(train, test)``, two :class:`Split`
objects. Every builder is registered with :func:`register`; its keyword arguments,
their types and defaults are its parameters (``params_of(name)`` lists them), so an
unknown or mistyped parameter is caught before anything runs.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from lrsc.errors import ConfigError


@dataclass
class Split:
    """One split of a spurious-correlation dataset; every tensor has ``n`` rows.

    x: inputs, float32, shape ``(n, *input_shape)``.
    y: class labels (the core feature), int64, shape ``(n,)``.
    b: bias labels (the spurious feature), int64, shape ``(n,)``.
    num_classes / num_bias: number of distinct values of ``y`` / ``b``.
    regions: named boolean masks of shape ``input_shape`` (e.g. core, spurious and
        noise bits), used to split attributions; empty where no region is known.
    """

    x: torch.Tensor
    y: torch.Tensor
    b: torch.Tensor
    num_classes: int
    num_bias: int
    regions: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def group(self) -> torch.Tensor:
        """Group id of each sample, ``y * num_bias + b``; shape ``(n,)``."""
        return self.y * self.num_bias + self.b

    @property
    def num_groups(self) -> int:
        return self.num_classes * self.num_bias

    @property
    def conflicting(self) -> torch.Tensor:
        """Boolean mask of bias-conflicting samples (``b != y``); shape ``(n,)``."""
        return self.b != self.y

    def to(self, device: str | torch.device) -> "Split":
        return Split(
            self.x.to(device), self.y.to(device), self.b.to(device),
            self.num_classes, self.num_bias,
            {k: v.to(device) for k, v in self.regions.items()},
        )


Builder = Callable[..., "tuple[Split, Split]"]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Class-free registry decorator: ``@register("parity")`` above a builder."""

    def add(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn

    return add


def names() -> list[str]:
    return sorted(_REGISTRY)


def _builder(name: str) -> Builder:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def params_of(name: str) -> dict[str, inspect.Parameter]:
    """The tunable parameters of dataset ``name`` (all but ``seed``), by name."""
    sig = inspect.signature(_builder(name))
    return {k: p for k, p in sig.parameters.items() if k != "seed"}


def build(name: str, seed: int = 0, **params) -> tuple[Split, Split]:
    """Build dataset ``name`` with ``params``; returns ``(train, test)`` on the CPU.

    The test split is unbiased: ``b`` is drawn independently of ``y``.
    """
    from lrsc.config import check_params

    check_params(f"dataset {name!r}", params, params_of(name))
    return _builder(name)(seed=seed, **params)


def conflicting_mask(n: int, rho: float, g: torch.Generator) -> torch.Tensor:
    """Exactly ``round(rho * n)`` True entries at positions drawn with ``g``."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[: round(rho * n)]] = True
    return mask


def biased_bias(y: torch.Tensor, num_classes: int, rho: float, g: torch.Generator) -> torch.Tensor:
    """Bias labels for class labels ``y``: ``b = y`` except on exactly ``round(rho * n)``
    bias-conflicting samples drawn with ``g``, where ``b`` is another class drawn uniformly."""
    n = len(y)
    shift = torch.randint(1, num_classes, (n,), generator=g) if num_classes > 2 else torch.ones(n, dtype=torch.long)
    return torch.where(conflicting_mask(n, rho, g), (y + shift) % num_classes, y)


def biased_labels(n: int, num_classes: int, rho: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Training labels: ``y`` uniform and ``b = biased_bias(y, ...)``."""
    y = torch.randint(num_classes, (n,), generator=g)
    return y, biased_bias(y, num_classes, rho, g)


def unbiased_labels(n: int, num_classes: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Test labels: ``y`` and ``b`` uniform and independent."""
    return torch.randint(num_classes, (n,), generator=g), torch.randint(num_classes, (n,), generator=g)


# Builders register themselves on import.
from lrsc.datasets import colored_mnist, corrupted_cifar10, double_mnist, mnist_cifar, moon_star, parity  # noqa: E402,F401
