"""MNIST-CIFAR: Shah et al. 2020's dominoes extended to all ten classes.

Each image stacks an MNIST digit (the bias ``b``, the simple spurious feature) on
top of a CIFAR-10 image (the class ``y``, the core feature): 3 x 64 x 32, rows 0-31
the digit (28 x 28 zero-padded by 2 pixels on each side, grey on all 3 channels),
rows 32-63 the CIFAR image. The digit is an MNIST image of class ``b`` drawn with
the seed from the matching split (train digits for training, test digits for test).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from lrsc.datasets import Split, register
from lrsc.datasets.images import build_image, draw_of_class, halves, image_check, load_cifar10, load_mnist

INPUT_SHAPE = (3, 64, 32)


@register("mnist_cifar", check=image_check("mnist_cifar", ("cifar10", "mnist"), INPUT_SHAPE))
def mnist_cifar(*, seed: int = 0, rho: float = 0.05, n_train: int | None = None, n_test: int | None = None,
                data_root: str = "") -> tuple[Split, Split]:
    """MNIST-CIFAR: images float32 in [0, 1], shape ``(n, 3, 64, 32)``; 10 classes.

    ``rho``: fraction of bias-conflicting training samples (exactly ``round(rho * n_train)``).
    ``n_train`` / ``n_test``: number of CIFAR-10 train / test images used, drawn with
    the seed (None: all 50000 / all test images present, 10000 officially). A data
    root with a partial CIFAR-10 test batch (``shared/data`` has 1000) gives a smaller
    test set, with a warning. ``data_root``: folder holding ``MNIST/raw`` and
    ``cifar-10-batches-py`` (empty: ``$LRSC_DATA``, else the user cache directory).
    ``regions``: ``spurious`` is the top half (the digit), ``core`` the bottom half.
    The test set is unbiased: ``b`` is uniform and independent of ``y``.
    """
    def compose(images: torch.Tensor, b: torch.Tensor, g: torch.Generator, root: Path, train: bool) -> torch.Tensor:
        digits, labels = load_mnist(root, train)
        top = F.pad(digits[draw_of_class(labels, b, g)], (2, 2, 2, 2))[:, None].expand(-1, 3, -1, -1)
        return torch.cat([top, images], dim=2)

    params = dict(rho=rho, n_train=n_train, n_test=n_test, data_root=data_root)
    return build_image("mnist_cifar", seed, params, load_cifar10, compose, halves(INPUT_SHAPE, 1, "spurious", "core"))
