"""Attributions and what they fall on: Integrated Gradients and DeepLift (captum), the share of
attribution on named input regions, and the share on an image's background, with background
masks from DeepLabV3 (weights from a local file) or, without them, from OpenCV's GrabCut."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrsc.errors import ConfigError
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # captum imports tqdm.auto, which warns in every notebook without ipywidgets; lrsc shows no captum bars
    warnings.simplefilter("ignore", TqdmWarning)
    from captum.attr import IntegratedGradients


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                         n_steps: int = 32, chunk: int = 256) -> torch.Tensor:
    """IG attributions of ``model``'s ``target`` logit, zero baseline; same shape as ``x``.

    Computed ``chunk`` inputs at a time (each expands to ``chunk * n_steps`` forward rows).
    """
    was_training = model.training
    model.eval()
    ig = IntegratedGradients(model)
    out = torch.cat([
        ig.attribute(x[i:i + chunk], baselines=torch.zeros_like(x[i:i + chunk]), target=target[i:i + chunk], n_steps=n_steps)
        for i in range(0, len(x), chunk)
    ])
    model.train(was_training)
    return out.detach()


def region_shares(attr: torch.Tensor, regions: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over inputs of each region's share of total |attribution|.

    attr: attributions, shape ``(n, *input_shape)``; regions: boolean masks of shape
    ``input_shape``. Inputs whose attribution is all zero are left out of the mean.
    """
    a = attr.abs().flatten(1)
    total = a.sum(1)
    keep = total > 0
    return {name: (a[keep][:, mask.flatten()].sum(1) / total[keep]).mean().item() for name, mask in regions.items()}


def deeplift(model: nn.Module, x: torch.Tensor, target: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """DeepLift (captum, Rescale rule) attributions of ``model``'s ``target`` logit against a zero
    baseline; same shape as ``x``. The paper's cross-check of Integrated Gradients."""
    from captum.attr import DeepLift

    was_training = model.training
    model.eval()
    method = DeepLift(model)
    with warnings.catch_warnings():  # captum warns that it sets requires_grad on the inputs
        warnings.simplefilter("ignore", UserWarning)
        out = torch.cat([method.attribute(x[i:i + chunk].clone(), baselines=torch.zeros_like(x[i:i + chunk]),
                                          target=target[i:i + chunk]) for i in range(0, len(x), chunk)])
    model.train(was_training)
    return out.detach()


def background_share(attr: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Each input's share of |attribution| on its background pixels, ``(n,)``, NaN where the
    attribution is all zero.

    attr: ``(n, C, H, W)`` (summed over channels: a pixel's attribution); background: boolean
    ``(n, H, W)``, True on background pixels.
    """
    a = attr.abs().sum(1)
    total = a.flatten(1).sum(1)
    return torch.where(total > 0, (a * background).flatten(1).sum(1) / total, torch.nan)


def grabcut_background(images: torch.Tensor, margin: float = 0.125, iterations: int = 3) -> torch.Tensor:
    """Background masks from OpenCV's GrabCut, initialised with the central box (everything
    within ``margin`` of the border, as a fraction of the side, starts as background): a
    stated, non-learned stand-in for a segmentation model.

    images: ``(n, 3, H, W)`` float in [0, 1]. Returns boolean ``(n, H, W)``, True on background.
    An image GrabCut cannot split (a flat one) keeps the box as its object.
    """
    import cv2

    n, _, h, w = images.shape
    top, left = max(1, round(margin * h)), max(1, round(margin * w))
    rect = (left, top, w - 2 * left, h - 2 * top)
    pixels = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    out = torch.ones(n, h, w, dtype=torch.bool)
    for i, image in enumerate(pixels):
        mask = np.zeros((h, w), np.uint8)
        cv2.setRNGSeed(0)  # GrabCut's k-means initialisation draws from OpenCV's generator
        try:
            cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, rect, np.zeros((1, 65)), np.zeros((1, 65)),
                        iterations, cv2.GC_INIT_WITH_RECT)
            fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        except cv2.error:
            fg = np.zeros((h, w), bool)
        if not fg.any():
            fg[top:h - top, left:w - left] = True
        out[i] = torch.from_numpy(~fg)
    return out


def deeplab_background(images: torch.Tensor, weights: str | Path) -> torch.Tensor:
    """Background masks from torchvision's DeepLabV3 (ResNet-50, the 21 Pascal VOC classes; class
    0 is background) with its weights read from the local file ``weights``; images are resized to
    520 pixels as torchvision's preset does. images ``(n, 3, H, W)`` in [0, 1]; returns boolean
    ``(n, H, W)``, True on background."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"DeepLabV3 weights not found at {str(path)!r}: put torchvision's "
                          f"deeplabv3_resnet50 state dict there, or use metrics.bg_mask: grabcut")
    net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    net.load_state_dict(torch.load(path, map_location="cpu"))
    net.eval().to(images.device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=images.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=images.device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 16):
            x = F.interpolate(images[i:i + 16], size=520, mode="bilinear", align_corners=False)
            logits = net((x - mean) / std)["out"]
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
            out.append(logits.argmax(1) == 0)
    return torch.cat(out).cpu()


def background_masks(images: torch.Tensor, method: str, weights: str = "") -> torch.Tensor:
    """Background masks ``(n, H, W)`` of ``images`` by ``method``: ``"grabcut"``
    (:func:`grabcut_background`) or ``"deeplab"`` (:func:`deeplab_background`, ``weights`` a local file)."""
    if method == "grabcut":
        return grabcut_background(images)
    if method == "deeplab":
        return deeplab_background(images, weights)
    raise ValueError(f"background mask method must be grabcut or deeplab, got {method!r}")


def high_lr_wins(correct_low: torch.Tensor, correct_high: torch.Tensor, high_at_least: float = 0.8,
                 low_at_most: float = 0.2) -> torch.Tensor:
    """The test samples that most high-LR models get right and most low-LR models do not (paper,
    suppl. E, Fig. 8): those that at least ``high_at_least`` of the high-LR models and at most
    ``low_at_most`` of the low-LR models predict correctly, most telling first (by the gap
    between the two shares, then by index).

    correct_low / correct_high: boolean ``(models, n)``, whether each model (one per seed) gets
    each sample right. Returns sample indices, ``(k,)`` long.
    """
    low, high = correct_low.float().mean(0), correct_high.float().mean(0)
    chosen = ((high >= high_at_least) & (low <= low_at_most)).nonzero()[:, 0]
    gap = (high - low)[chosen]
    order = sorted(range(len(chosen)), key=lambda i: (-round(float(gap[i]), 6), int(chosen[i])))  # ties by index
    return chosen[order]
