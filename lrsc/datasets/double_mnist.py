"""Double MNIST (the paper's own dataset): two MNIST digits side by side.

The left digit is the class ``y`` (the core feature); the right digit is the bias
``b``, an MNIST image of class ``b`` drawn with the seed from the same split. The
right digit is drawn brighter: the left one's grey levels are divided by
``brightness_ratio``, which makes the spurious half the more salient one.
Images are 28 x 56 (height x width), the grey levels repeated on 3 channels.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lrsc.datasets import Split, register
from lrsc.datasets.images import build_image, draw_of_class, halves, image_check, load_mnist
from lrsc.errors import ConfigError

INPUT_SHAPE = (3, 28, 56)


def _check_brightness(p: dict) -> None:
    if p["brightness_ratio"] < 1:
        raise ConfigError(f"double_mnist: dataset_params.brightness_ratio must be >= 1 (the bias digit is the "
                          f"brighter one), got {p['brightness_ratio']}")


@register("double_mnist", check=image_check("double_mnist", ("mnist",), INPUT_SHAPE, _check_brightness))
def double_mnist(*, seed: int = 0, rho: float = 0.01, brightness_ratio: float = 2.0, n_train: int | None = None,
                 n_test: int | None = None, data_root: str = "") -> tuple[Split, Split]:
    """Double MNIST: images float32 in [0, 1], shape ``(n, 3, 28, 56)``; 10 classes.

    ``rho``: fraction of bias-conflicting training samples (exactly ``round(rho * n_train)``).
    ``brightness_ratio``: right (bias) digit intensity over left (class) digit intensity, >= 1.
    ``n_train`` / ``n_test``: number of left-hand MNIST train / test digits used, drawn
    with the seed (None: all 60000 / 10000). ``data_root``: folder holding ``MNIST/raw``
    (empty: ``$LRSC_DATA``, else the user cache directory).
    ``regions``: ``core`` is the left half (columns 0-27), ``spurious`` the right half.
    The test set is unbiased: ``b`` is uniform and independent of ``y``.
    """
    def compose(left: torch.Tensor, b: torch.Tensor, g: torch.Generator, root: Path, train: bool) -> torch.Tensor:
        digits, labels = load_mnist(root, train)
        right = digits[draw_of_class(labels, b, g)]
        left = (left.float() / brightness_ratio).round_().to(torch.uint8)
        return torch.cat([left, right], dim=2)[:, None]  # one channel; to_splits repeats it to three

    params = dict(rho=rho, brightness_ratio=brightness_ratio, n_train=n_train, n_test=n_test, data_root=data_root)
    return build_image("double_mnist", seed, params, load_mnist, compose, halves(INPUT_SHAPE, 2, "core", "spurious"))
