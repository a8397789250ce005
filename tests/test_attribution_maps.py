"""Attribution maps on images: background share, GrabCut masks, DeepLift, the Fig. 8 selection,
and the stored ``bg_share`` variable."""
import math

import pytest
import torch
from torch import nn

from lrsc import attribution, config, models
from lrsc.evaluation import evaluate
from lrsc.datasets import Split
from lrsc.errors import ConfigError


def test_background_share_known_answer():
    attr = torch.zeros(2, 3, 2, 2)
    attr[0, :, 0, 0] = 1.0   # 3 on the background pixel ...
    attr[0, 0, 1, 1] = -1.0  # ... 1 on the object (|.| counts)
    background = torch.tensor([[[True, False], [False, False]]] * 2)
    share = attribution.background_share(attr, background)
    assert share[0].item() == pytest.approx(0.75)
    assert math.isnan(share[1].item())  # no attribution at all


def _object_images(n: int = 3, size: int = 32) -> torch.Tensor:
    """Bright red squares on a textured dark-blue background, at the centre."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g) * 0.15
    images[:, 2] += 0.3
    lo, hi = size // 4 + 2, 3 * size // 4 - 2
    images[:, 0, lo:hi, lo:hi] = 0.9 + 0.1 * torch.rand(n, hi - lo, hi - lo, generator=g)
    images[:, 1:, lo:hi, lo:hi] = 0.1
    return images, (lo, hi)


def test_grabcut_finds_the_central_object():
    images, (lo, hi) = _object_images()
    background = attribution.grabcut_background(images)
    assert background.shape == (3, 32, 32) and background.dtype == torch.bool
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[lo:hi, lo:hi] = True
    for mask in background:
        assert (~mask[inside]).float().mean() > 0.9  # the square is object
        assert mask[~inside].float().mean() > 0.9  # the rest is background
        assert mask[:4].all() and mask[:, :4].all()  # the border, outside the initial box
    assert torch.equal(background, attribution.grabcut_background(images))  # deterministic
    flat = attribution.grabcut_background(torch.full((1, 3, 32, 32), 0.5))
    assert flat[0, 16, 16] == False and flat[0, 0, 0] == True  # noqa: E712  nothing to split: the box is the object


def test_deeplab_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="DeepLabV3 weights not found.*metrics.bg_mask: grabcut"):
        attribution.deeplab_background(torch.rand(1, 3, 8, 8), tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match="metrics.bg_mask=deeplab needs.*use metrics.bg_mask=grabcut"):
        config.load({"metrics": {"bg_mask": "deeplab", "deeplab_weights": str(tmp_path / "absent.pth")}})


def test_deeplift_equals_ig_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3, bias=False))
    x, target = torch.rand(5, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    expected = x * model[1].weight[target].view(5, 3, 2, 2)  # input times weight: both methods' exact answer
    torch.testing.assert_close(attribution.deeplift(model, x, target), expected)
    torch.testing.assert_close(attribution.integrated_gradients(model, x, target, n_steps=8), expected)
    cnn = models.build("cnn", input_shape=(3, 32, 32), num_classes=10, width=1 / 16)
    assert attribution.deeplift(cnn, torch.rand(4, 3, 32, 32), torch.arange(4)).shape == (4, 3, 32, 32)


def test_high_lr_wins_known_answer():
    low = torch.tensor([[1, 0, 0, 1, 0], [1, 0, 1, 1, 0], [1, 0, 0, 1, 0]], dtype=torch.bool)
    high = torch.tensor([[1, 1, 1, 0, 1], [1, 1, 1, 0, 0], [1, 1, 1, 0, 1]], dtype=torch.bool)
    # sample 1: all high right, no low right (gap 1); 2: all high, a third of low (gap 2/3);
    # 4: two thirds of high, no low (gap 2/3); 0 and 3: no gap
    assert attribution.high_lr_wins(low, high, high_at_least=0.6, low_at_most=0.4).tolist() == [1, 2, 4]
    assert attribution.high_lr_wins(low, high, high_at_least=1.0, low_at_most=0.0).tolist() == [1]


def test_bg_share_is_stored_with_masks_only():
    images, _ = _object_images(6)
    y = torch.arange(6) % 2
    test = Split(images, y, y.clone(), num_classes=2, num_bias=2)
    model = models.build("cnn", input_shape=(3, 32, 32), num_classes=2, width=1 / 16)
    run = config.expand(config.load({"metrics": {"n_attr": 6, "ig_steps": 4, "bg_mask": "grabcut"}}))[0]
    share = evaluate(run, model, test, None, ("bg_share",))["bg_share"]
    assert 0 < float(share) < 1
    run["metrics"]["bg_mask"] = "none"
    assert math.isnan(float(evaluate(run, model, test, None, ("bg_share",))["bg_share"]))
