"""The moon-star dataset (supplement, Fig. 15): tell a moon from a star.

The core feature is the shape (``y = 0`` moon, ``y = 1`` star); the spurious feature
is where it sits (``b = 0`` upper-left quadrant, ``b = 1`` lower-right). Shapes are
rendered on the fly with random size, rotation and position inside their quadrant,
so no image files are needed.
"""
import math

import torch

from lrsc.datasets import Info, Split, biased_labels, check_rho, register, unbiased_labels
from lrsc.errors import ConfigError
from lrsc.seeding import generator


def render(y: torch.Tensor, b: torch.Tensor, image_size: int, pixel_noise: float, g: torch.Generator) -> torch.Tensor:
    """Images of shape ``(n, 1, image_size, image_size)`` with values in [0, 1]."""
    n, s = len(y), image_size
    u = torch.arange(s, dtype=torch.float32) + 0.5
    # Quadrant centre at s/4 or 3s/4; the shape's radius and jitter keep it inside its quadrant.
    centre = (s / 4 + b.float() * s / 2)[:, None]
    cx = centre + (torch.rand(n, 1, generator=g) - 0.5) * 0.1 * s
    cy = centre + (torch.rand(n, 1, generator=g) - 0.5) * 0.1 * s
    r = (0.13 + 0.05 * torch.rand(n, 1, 1, generator=g)) * s
    theta = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    dx = u[None, None, :] - cx[:, :, None]
    dy = u[None, :, None] - cy[:, :, None]
    dist = torch.sqrt(dx**2 + dy**2)
    # Moon: a disk minus a smaller disk shifted towards angle theta.
    ox, oy = 0.5 * r * torch.cos(theta), 0.5 * r * torch.sin(theta)
    moon = (dist <= r) & (torch.sqrt((dx - ox) ** 2 + (dy - oy) ** 2) > 0.85 * r)
    # Star: five pointed lobes, radius 0.4r between points and r at the tips.
    phi = torch.atan2(dy, dx) - theta
    star = dist <= r * (0.4 + 0.6 * torch.cos(2.5 * phi).abs() ** 3)
    img = torch.where(y[:, None, None].bool(), star, moon).float()
    if pixel_noise > 0:
        img = (img + pixel_noise * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return img[:, None]


def _check(p: dict) -> Info:
    if p["image_size"] < 8:
        raise ConfigError(f"moon_star image_size must be at least 8, got {p['image_size']}")
    check_rho("moon_star", p["rho"])
    if p["n_train"] < 1 or p["n_test"] < 1 or p["pixel_noise"] < 0:
        raise ConfigError(f"moon_star needs n_train, n_test >= 1 and pixel_noise >= 0, "
                          f"got {p['n_train']}, {p['n_test']}, {p['pixel_noise']}")
    return Info(p["n_train"], (1, p["image_size"], p["image_size"]), 2)


@register("moon_star", check=_check)
def moon_star(*, seed: int = 0, rho: float = 0.05, image_size: int = 32, pixel_noise: float = 0.05,
              n_train: int = 10000, n_test: int = 10000) -> tuple[Split, Split]:
    """Moon-star images, shape ``(n, 1, image_size, image_size)``, two classes.

    ``rho``: fraction of bias-conflicting training samples (shape in the other class's
    quadrant), exactly ``round(rho * n_train)``. ``pixel_noise``: std of additive
    Gaussian noise, clamped to [0, 1].
    """
    g = generator(seed, "dataset/moon_star")
    splits = []
    for y, b in (biased_labels(n_train, 2, rho, g), unbiased_labels(n_test, 2, g)):
        splits.append(Split(render(y, b, image_size, pixel_noise, g), y, b, num_classes=2, num_bias=2))
    return splits[0], splits[1]
