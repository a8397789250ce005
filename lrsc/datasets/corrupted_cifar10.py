"""Corrupted CIFAR-10 (Nam et al. 2020, "Learning from Failure", first protocol):
the object is the class, the corruption type the bias, one corruption per class.

Bias label ``k`` applies the ``k``-th of :data:`CORRUPTIONS` (snow, frost, fog,
brightness, contrast, spatter, elastic, JPEG, pixelate, saturate) at ``severity``
1-5 with the CIFAR-10-C parameters of Hendrycks & Dietterich 2019, the code LfF
used. ``severity=5`` is what LfF's "Severity4" folders hold (LfF passes
``severity + 1``), the setting of its main results.

The corruptions are written here in torch, batched over images, because the
maintained package (``imagecorruptions`` 1.1.2) no longer imports with current
setuptools (``pkg_resources``) and numpy 2 (``np.float_``), and works one image at a
time. Exact up to float rounding: brightness, contrast, saturate (closed-form HSV
edits that keep hue and value), JPEG (PIL, as the original). Approximations:

* snow: ImageMagick's motion blur of the snow layer is a Gaussian-weighted sum of
  bilinear shifts along the random angle.
* frost: the six frost photographs are not shipped; the frost layer is a synthetic
  pale-blue ice texture (fractal noise plus motion-blurred sparse crystals), blended
  with the CIFAR-10-C weights.
* fog: the diamond-square plasma fractal is replaced by spectral synthesis with the
  same per-octave amplitude decay (``wibbledecay``).
* spatter: the water drops' Canny / distance-transform shading is replaced by an
  emboss of the liquid layer; the mud variant (severities 4-5) is as in the original.
* elastic: the random affine and the smoothed displacement field are composed into
  one bilinear resampling (reflection at the border).
* pixelate: PIL's BOX down- and up-sampling as 0/1 weight matrices, without the
  intermediate rounding to uint8.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lrsc.datasets import Split, register
from lrsc.datasets.images import build_image, image_check, load_cifar10
from lrsc.errors import ConfigError

SIZE = 32
GREY = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as cv2.COLOR_RGB2GRAY


# ----- helpers; images are float tensors (n, c, 32, 32) in [0, 1] -----

def _gaussian_blur(img: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "replicate") -> torch.Tensor:
    """Separable Gaussian blur of each channel (skimage.filters.gaussian's kernel)."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return img
    t = torch.arange(-radius, radius + 1, dtype=img.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    n, c, h, w = img.shape
    out = F.pad(img.reshape(n * c, 1, h, w), (radius, radius, radius, radius), mode=mode)
    out = F.conv2d(F.conv2d(out, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return out.reshape(n, c, h, w)


def _pixel_grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row coordinates of every pixel, each ``(n, 32, 32)``."""
    r = torch.arange(SIZE, dtype=torch.float32)
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    return cols.expand(n, -1, -1), rows.expand(n, -1, -1)


def _sample(img: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinear samples of ``img`` at pixel coordinates ``(cols, rows)``, each ``(n, 32, 32)``."""
    grid = torch.stack([cols, rows], dim=-1) * (2 / (SIZE - 1)) - 1
    return F.grid_sample(img, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def _motion_blur(layer: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """ImageMagick-style motion blur: one-sided Gaussian weights over ``2 ceil(radius) + 1``
    taps at whole-pixel offsets along ``angle`` (radians, one per image), edge pixels
    repeated outside the image; ``layer`` is ``(n, 1, 32, 32)``."""
    taps = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float32)
    weights = torch.exp(-taps**2 / (2 * sigma**2))
    weights = weights / weights.sum()
    n = len(layer)
    cols, rows = _pixel_grid(n)
    dx, dy = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    flat = layer.reshape(n, SIZE * SIZE)
    out = torch.zeros_like(flat)
    for i, w in zip(taps, weights):
        c = (cols + (i * dx).round()).clamp(0, SIZE - 1)
        r = (rows + (i * dy).round()).clamp(0, SIZE - 1)
        out += w * flat.gather(1, (r * SIZE + c).long().reshape(n, -1))
    return out.reshape(layer.shape)


def _fractal(n: int, decay: float, g: torch.Generator) -> torch.Tensor:
    """Periodic fractal noise in [0, 1], ``(n, 1, 32, 32)``, whose per-octave amplitude
    falls by ``decay``, like the diamond-square plasma with ``wibbledecay=decay``: the
    octave near frequency f has amplitude f^-log2(decay), so the spectrum (spread over
    an annulus of area ~f^2) falls as f^-(log2(decay) + 1)."""
    f = torch.fft.fftfreq(SIZE)
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = math.inf  # no DC term; the map is rescaled to [0, 1] anyway
    amplitude = radius ** -(math.log2(decay) + 1)
    noise = torch.fft.fft2(torch.randn(n, 1, SIZE, SIZE, generator=g))
    field = torch.fft.ifft2(noise * amplitude).real
    lo = field.amin(dim=(2, 3), keepdim=True)
    hi = field.amax(dim=(2, 3), keepdim=True)
    return (field - lo) / (hi - lo)


def _box_resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """PIL's BOX filter as an ``(n_out, n_in)`` matrix: output pixel j averages the
    input pixels whose centres fall in its (at least one pixel wide) window."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (torch.arange(n_out, dtype=torch.float32) + 0.5) * scale
    d = torch.arange(n_in, dtype=torch.float32)[None, :] + 0.5 - centres[:, None]
    w = ((d >= -support / 2) & (d < support / 2)).float()
    return w / w.sum(1, keepdim=True)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round_().clamp_(0, 255).to(torch.uint8)


def _hsv_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Value (channel max) and channel min, each ``(n, 1, 32, 32)``."""
    return x.amax(1, keepdim=True), x.amin(1, keepdim=True)


# ----- the ten corruptions: (x, severity, g) -> x, all in [0, 1] -----

def snow(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    n = len(x)
    layer = loc + scale * torch.randn(n, 1, SIZE, SIZE, generator=g)
    # Zoom into the centre (scipy's clipped_zoom): crop ceil(32/zoom), upsample, trim.
    crop = math.ceil(SIZE / zoom)
    top = (SIZE - crop) // 2
    zoomed = F.interpolate(layer[:, :, top:top + crop, top:top + crop], size=round(crop * zoom),
                           mode="bilinear", align_corners=True)
    trim = (zoomed.shape[-1] - SIZE) // 2
    layer = zoomed[:, :, trim:trim + SIZE, trim:trim + SIZE]
    layer = torch.where(layer < threshold, 0.0, layer).clamp(0, 1)
    angle = torch.deg2rad(-135 + 90 * torch.rand(n, generator=g))
    layer = _motion_blur(layer, radius, sigma, angle)
    grey = (x * GREY.view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = keep * x + (1 - keep) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + layer + layer.flip(2, 3)).clamp(0, 1)


def frost(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    keep, amount = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    n = len(x)
    seeds = (torch.rand(n, 1, SIZE, SIZE, generator=g) > 0.95).float()
    crystals = _motion_blur(seeds, 3, 2, 2 * math.pi * torch.rand(n, generator=g))
    ice = (0.2 + 0.6 * _fractal(n, 1.5, g) + crystals).clamp(0, 1)
    tint = torch.tensor([0.86, 0.93, 1.0]).view(1, 3, 1, 1)  # frost photographs are pale blue
    return (keep * x + amount * ice * tint).clamp(0, 1)


def fog(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + amount * _fractal(len(x), decay, g)) * top / (top + amount)).clamp(0, 1)


def brightness(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    value, _ = _hsv_parts(x)
    new = (value + c).clamp(0, 1)
    # With hue and saturation fixed, RGB is proportional to the value; black has no hue and turns grey.
    return torch.where(value > 0, x * new / value.clamp_min(1e-12), new)


def contrast(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * c + mean).clamp(0, 1)


def spatter(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    loc, scale, sigma, threshold, strength, mud = [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][severity - 1]
    liquid = _gaussian_blur(loc + scale * torch.randn(len(x), 1, SIZE, SIZE, generator=g), sigma)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if mud:
        m = _gaussian_blur((liquid > threshold).float(), strength)
        m = torch.where(m < 0.8, 0.0, m)
        brown = torch.tensor([63, 42, 20]).view(1, 3, 1, 1) / 255
        return (x * (1 - m) + brown * m).clamp(0, 1)
    emboss = torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]]).view(1, 1, 3, 3)
    shade = F.avg_pool2d(F.conv2d(F.pad(liquid, (1, 1, 1, 1), mode="replicate"), emboss).relu(),
                         3, stride=1, padding=1, count_include_pad=False)
    m = liquid * shade
    m = m / m.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12) * strength
    turquoise = torch.tensor([175, 238, 238]).view(1, 3, 1, 1) / 255
    return (x + m * turquoise).clamp(0, 1)


def elastic(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    alpha, sigma, jitter = (SIZE * c for c in [
        (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][severity - 1])
    n = len(x)
    centre, half = SIZE // 2, SIZE // 3
    src = torch.tensor([[centre + half, centre + half], [centre + half, centre - half],
                        [centre - half, centre - half]], dtype=torch.float32)
    dst = src + jitter * (2 * torch.rand(n, 3, 2, generator=g) - 1)
    # cv2.warpAffine samples the source at the inverse map, which sends dst to src.
    inverse = torch.linalg.solve(torch.cat([dst, torch.ones(n, 3, 1)], 2), src.expand(n, -1, -1))  # (n, 3, 2)
    cols, rows = _pixel_grid(n)
    if alpha > 0:
        shift = _gaussian_blur(2 * torch.rand(n, 2, SIZE, SIZE, generator=g) - 1, sigma, truncate=3, mode="reflect")
        cols, rows = cols + alpha * shift[:, 0], rows + alpha * shift[:, 1]
    at = torch.stack([cols, rows, torch.ones_like(cols)], -1) @ inverse[:, None]  # (n, 32, 32, 2)
    return _sample(x, at[..., 0], at[..., 1], "reflection").clamp(0, 1)


def jpeg(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    quality = [80, 65, 58, 50, 40][severity - 1]
    out = []
    for img in _to_uint8(x).permute(0, 2, 3, 1).numpy():  # a codec works image by image
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf)))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def pixelate(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    small = int(SIZE * [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1])
    down, up = _box_resize_matrix(SIZE, small), _box_resize_matrix(small, SIZE)
    return up @ (down @ x @ down.T) @ up.T


def saturate(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    factor, offset = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
    value, low = _hsv_parts(x)
    sat = torch.where(value > 0, (value - low) / value.clamp_min(1e-12), 0.0)
    new_low = value * (1 - (sat * factor + offset).clamp(0, 1))
    # Each channel's place between min and max encodes the hue and is kept; a grey
    # pixel has hue 0 in skimage, i.e. red, so added saturation tints it red.
    spread = value - low
    place = torch.where(spread > 0, (x - low) / spread.clamp_min(1e-12),
                        torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1))
    return new_low + (value - new_low) * place


CORRUPTIONS = (snow, frost, fog, brightness, contrast, spatter, elastic, jpeg, pixelate, saturate)


def corrupt(images: torch.Tensor, b: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Apply corruption ``b[i]`` to uint8 image ``images[i]`` ``(n, 3, 32, 32)``; uint8 out."""
    out = torch.empty_like(images)
    for k, fn in enumerate(CORRUPTIONS):
        idx = (b == k).nonzero().squeeze(1)
        if len(idx):
            out[idx] = _to_uint8(fn(images[idx].float() / 255, severity, g))
    return out


def _check_severity(p: dict) -> None:
    if p["severity"] not in range(1, 6):
        raise ConfigError(f"corrupted_cifar10: dataset_params.severity must be an integer from 1 to 5, "
                          f"got {p['severity']!r}")


@register("corrupted_cifar10", check=image_check("corrupted_cifar10", ("cifar10",), (3, SIZE, SIZE), _check_severity))
def corrupted_cifar10(*, seed: int = 0, rho: float = 0.05, severity: int = 5, n_train: int | None = None,
                      n_test: int | None = None, data_root: str = "") -> tuple[Split, Split]:
    """Corrupted CIFAR-10: images float32 in [0, 1], shape ``(n, 3, 32, 32)``; 10 classes,
    10 corruption types (bias ``k`` is ``CORRUPTIONS[k]``).

    ``rho``: fraction of bias-conflicting training samples (exactly ``round(rho * n_train)``),
    which carry another class's corruption. ``severity``: CIFAR-10-C severity, 1-5.
    ``n_train`` / ``n_test``: number of CIFAR-10 train / test images used, drawn with
    the seed (None: all 50000 / all test images present, 10000 officially). A data
    root with a partial CIFAR-10 test batch (``shared/data`` has 1000) gives a smaller
    test set, with a warning. ``data_root``: folder holding ``cifar-10-batches-py``
    (empty: ``$LRSC_DATA``, else the user cache directory).
    The test set is unbiased: ``b`` is uniform and independent of ``y``.
    """
    params = dict(rho=rho, severity=severity, n_train=n_train, n_test=n_test, data_root=data_root)
    return build_image("corrupted_cifar10", seed, params, load_cifar10,
                       lambda images, b, g, root, train: corrupt(images, b, severity, g))
