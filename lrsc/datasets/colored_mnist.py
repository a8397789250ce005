"""Colored MNIST (Nam et al. 2020, "Learning from Failure"): the digit is the class,
the colour of its stroke the bias.

Each image is ``clamp(colour[b] + jitter, 0, 1) * grey``: the MNIST digit's grey
level (in [0, 1]) times one RGB colour per image, the bias class's mean colour plus
one Gaussian jitter vector (std ``color_std``) for the whole image. The background
stays exactly black. ``color_std = 0.005`` is LfF's "severity 4", the setting of its
main results.
"""
from __future__ import annotations


import torch

from lrsc.datasets import Split, register
from lrsc.datasets.images import build_image, image_check, load_mnist
from lrsc.errors import ConfigError

# LfF's mean colours (data/resource/colors.th), RGB in [0, 1], indexed by bias label.
LFF_COLORS = torch.tensor([
    [0.98368, 0.31252, 0.16858], [0.99053, 0.91561, 0.35151], [0.67296, 0.46107, 0.57981],
    [0.78325, 0.83156, 0.60133], [0.08802, 0.77796, 0.98181], [0.32139, 0.96105, 0.44645],
    [0.02462, 0.23565, 0.75867], [0.55525, 0.10158, 0.76176], [0.20772, 0.39295, 0.01870],
    [0.83366, 0.20241, 0.26694],
])


def colorize(grey: torch.Tensor, b: torch.Tensor, color_std: float, g: torch.Generator) -> torch.Tensor:
    """Colour uint8 digits ``grey`` ``(n, 28, 28)`` by bias labels ``b``; uint8 ``(n, 3, 28, 28)``."""
    color = (LFF_COLORS[b] + color_std * torch.randn(len(b), 3, generator=g)).clamp(0, 1)
    return (color[:, :, None, None] * grey[:, None].float()).round_().to(torch.uint8)


def _check_color(p: dict) -> None:
    if p["color_std"] < 0:
        raise ConfigError(f"colored_mnist: dataset_params.color_std must be >= 0, got {p['color_std']}")


@register("colored_mnist", check=image_check("colored_mnist", ("mnist",), (3, 28, 28), _check_color))
def colored_mnist(*, seed: int = 0, rho: float = 0.01, color_std: float = 0.005, n_train: int | None = None,
                  n_test: int | None = None, data_root: str = "") -> tuple[Split, Split]:
    """Colored MNIST: images float32 in [0, 1], shape ``(n, 3, 28, 28)``; 10 classes, 10 colours.

    ``rho``: fraction of bias-conflicting training samples (exactly ``round(rho * n_train)``).
    ``color_std``: std of the per-image colour jitter, in RGB units of [0, 1].
    ``n_train`` / ``n_test``: number of MNIST train / test digits used, drawn with the
    seed (None: all 60000 / 10000). ``data_root``: folder holding ``MNIST/raw``
    (empty: ``$LRSC_DATA``, else the user cache directory).
    The test set is unbiased: ``b`` is uniform and independent of ``y``.
    """
    params = dict(rho=rho, color_std=color_std, n_train=n_train, n_test=n_test, data_root=data_root)
    return build_image("colored_mnist", seed, params, load_mnist,
                       lambda grey, b, g, root, train: colorize(grey, b, color_std, g))
