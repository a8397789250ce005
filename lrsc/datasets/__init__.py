"""Datasets with spurious correlations, built by name.

``build("parity", seed=0, rho=0.05)`` returns ``(train, test)``, two :class:`Split`
objects. Every builder is registered with :func:`register` together with its check;
the builder's keyword arguments, their types and defaults are its parameters
(the book's Definitions page lists them). ``check(name, params)`` validates them without
building anything (types, ranges, sizes against the source data, the data root and its
layout) and says what the dataset will hold (:class:`Info`), so a sweep can refuse a
bad grid before any run starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from lrsc.errors import ConfigError
from lrsc.registry import Registry, normalise_params


@dataclass
class Split:
    """One split of a spurious-correlation dataset; every tensor has ``n`` rows.

    x: inputs, float32, shape ``(n, *input_shape)``; a training set of 8-bit images on a GPU
        holds them as uint8 pixel levels instead (a quarter of the memory, see
        :func:`lrsc.runs.load_data`), which :func:`as_inputs` turns into those float32 values.
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

    def take(self, rows: torch.Tensor) -> "Split":
        """The samples at ``rows`` (indices, on the split's device), as a Split of their own."""
        return Split(self.x[rows], self.y[rows], self.b[rows], self.num_classes, self.num_bias, dict(self.regions))

    def to(self, device: str | torch.device) -> "Split":
        return Split(
            self.x.to(device), self.y.to(device), self.b.to(device),
            self.num_classes, self.num_bias,
            {k: v.to(device) for k, v in self.regions.items()},
        )


PIXEL_LEVELS = 255  # an 8-bit image's value k stands for the input k / 255, as the image builders make them


def as_inputs(x: torch.Tensor) -> torch.Tensor:
    """Model inputs from stored inputs: uint8 pixel levels k become float32 ``k / 255`` (the very
    values the image builders compute); any other tensor is returned as it is."""
    return x.float().div_(PIXEL_LEVELS) if x.dtype == torch.uint8 else x


def pixel_levels(x: torch.Tensor, chunk: int = 2**24) -> torch.Tensor | None:
    """``x`` as uint8 levels k when every value is exactly ``k / 255`` for an integer k in [0, 255]
    (so that ``as_inputs`` gives ``x`` back bit for bit), else None. Checked ``chunk`` values at a
    time: a set that is not 8-bit costs one chunk, and no float copy of the whole set is made."""
    if x.dtype != torch.float32:
        return None
    flat, levels = x.reshape(-1), torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    out = levels.view(-1)
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        k = (part * PIXEL_LEVELS).round_()
        if not (k.div(PIXEL_LEVELS).eq(part).all() and k.min() >= 0 and k.max() <= PIXEL_LEVELS):
            return None
        out[start:start + chunk] = k
    return levels


@dataclass(frozen=True)
class Info:
    """What a dataset will hold, known before it is built: the training-set size, the shape
    of one input (no batch dim) and the number of classes."""

    n_train: int
    input_shape: tuple[int, ...]
    num_classes: int


Builder = Callable[..., "tuple[Split, Split]"]
# check(params) -> Info: params are the builder's keyword arguments (defaults filled in, no
# seed); raises ConfigError naming the bad parameter and how to fix it.
Check = Callable[[dict], Info]
REGISTRY: Registry[tuple[Builder, Check]] = Registry("dataset", origin=lambda entry: entry[0])


def register(name: str, check: Check, *, replace: bool = False) -> Callable[[Builder], Builder]:
    """Register a dataset builder as ``name``: ``@register("parity", check=_check)`` above it.

    The builder takes ``seed`` and its own keyword parameters (each with a default, whose type
    is the parameter's type) and returns ``(train, test)`` :class:`Split` objects on the CPU,
    the test split unbiased. ``check(params)`` validates the parameters (defaults filled in)
    without building anything and returns an :class:`Info`. A name already registered raises
    ConfigError unless ``replace``. A builder defined in a notebook or script travels to
    worker processes and cluster jobs with the sweep (see ``lrsc.extensions``).
    """

    def add(fn: Builder) -> Builder:
        REGISTRY.add(name, (fn, check), replace=replace)
        return fn

    return add


def names() -> list[str]:
    return REGISTRY.names()


def normalise(name: str, params: dict) -> dict:
    """``params`` of dataset ``name`` complete (defaults filled in) and typed; raises ConfigError
    for an unknown name or parameter or a value of the wrong type."""
    return normalise_params(f"dataset {name!r}", REGISTRY.get(name)[0], params, skip=("seed",))


def check(name: str, params: dict) -> Info:
    """Validate ``params`` of dataset ``name`` without building it; returns what it will hold.

    Raises ConfigError for an unknown name or parameter, a value of the wrong type or out of
    range, a size the source data cannot provide, or a data root without the source files.
    """
    return REGISTRY.get(name)[1](normalise(name, params))


def build(name: str, seed: int = 0, **params) -> tuple[Split, Split]:
    """Build dataset ``name`` with ``params`` (checked first); returns ``(train, test)`` on the CPU.

    The test split is unbiased: ``b`` is drawn independently of ``y``.
    """
    check(name, params)
    return REGISTRY.get(name)[0](seed=seed, **normalise(name, params))


def check_rho(name: str, rho: float) -> None:
    if not 0 <= rho <= 1:
        raise ConfigError(f"{name}: dataset_params.rho must lie in [0, 1] (a fraction of the training set), got {rho}")


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
from lrsc.datasets import naturalistic, standard  # noqa: E402,F401


def group_sizes(configs: dict[str, dict]) -> "pd.DataFrame":
    """Per sweep config (``{name: config}``, as a collected sweep stores it): how many groups (class,
    bias value) its unbiased test set has, how many test images the smallest group holds, and the
    test images in all, for the config's first seed."""
    import pandas as pd

    rows = {}
    for name, cfg in configs.items():
        test = build(cfg["dataset"], seed=cfg["grid"].get("seed", [cfg["seed"]])[0], **cfg["dataset_params"])[1]
        sizes = torch.bincount(test.group, minlength=test.num_groups)
        rows[name] = {"groups": len(sizes), "smallest test group": int(sizes.min()), "test images": len(test)}
    return pd.DataFrame.from_dict(rows, orient="index")
