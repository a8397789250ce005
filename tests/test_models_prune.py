"""Registry models (FCN, VGG11-like CNN, small-image ResNets) and their pruning.

Tiny widths and a few images keep the file fast on a CPU.
"""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from lrsc import metrics, models, prune
from lrsc.errors import ConfigError

CONV_MODELS = ["cnn", "resnet18", "resnet50", "wrn101_2"]
ALL_MODELS = ["fcn"] + CONV_MODELS
WIDTH = 0.125  # 64 channels -> 8, 512 -> 64
PARAMS = {"fcn": {"width": 16}} | {name: {"width": WIDTH} for name in CONV_MODELS}
# features(x).shape[1] at PARAMS: the last hidden width, or 512 * WIDTH channels (x4 for bottlenecks)
FEATURE_DIM = {"fcn": 16, "cnn": 64, "resnet18": 64, "resnet50": 256, "wrn101_2": 256}


def _build(name: str, input_shape=(3, 32, 32), num_classes: int = 10, **params) -> nn.Module:
    torch.manual_seed(0)
    return models.build(name, input_shape=input_shape, num_classes=num_classes, **(PARAMS[name] | params))


@torch.no_grad()
def _randomise_batchnorm(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial scale, shift and running statistics, so that a pruned
    channel outputs zero only if pruning zeroed its scale and shift too."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


def _last_conv(block: nn.Module) -> nn.Conv2d:
    return block.conv3 if isinstance(block, Bottleneck) else block.conv2


def _output_module(unit: prune.Unit) -> nn.Module:
    """The module whose output is the channel's final value: its BatchNorm if it has one."""
    layer, bn = unit
    return bn if bn is not None else layer


def _dropped(layer: nn.Module) -> torch.Tensor:
    """Indices of the output channels whose incoming weights are all zero."""
    return torch.nonzero(layer.weight.flatten(1).abs().sum(1) == 0).flatten()


@pytest.mark.parametrize("input_shape", [(3, 32, 32), (1, 28, 28)])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_build_forward_and_features(name, input_shape):
    model = _build(name, input_shape=input_shape, num_classes=7).eval()
    x = torch.randn(3, *input_shape)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (3, 7)
    assert feats.shape == (3, FEATURE_DIM[name])
    assert (feats >= 0).all()  # post-activation
    assert isinstance(model.head, nn.Linear) and model.head.in_features == FEATURE_DIM[name]
    pf, pl = models.predict(model, x)
    torch.testing.assert_close(pf, feats)
    torch.testing.assert_close(pl, logits)


@pytest.mark.parametrize("name", CONV_MODELS)
def test_conv_models_need_images_and_positive_width(name):
    with pytest.raises(ConfigError):
        models.build(name, input_shape=(16,), num_classes=2)
    with pytest.raises(ConfigError):
        models.build(name, input_shape=(3, 32, 32), num_classes=2, width=0.0)


@pytest.mark.parametrize("name", CONV_MODELS)
def test_parameter_count_scales_with_width(name):
    def count(width):
        return sum(p.numel() for p in _build(name, width=width).parameters())

    # conv weights grow as width^2; the input conv, BatchNorms and head only as width
    assert 3.0 < count(2 * WIDTH) / count(WIDTH) < 4.0


@pytest.mark.parametrize("name, reference", [("resnet18", torchvision.models.resnet18),
                                             ("resnet50", torchvision.models.resnet50)])
def test_full_width_resnet_is_torchvisions_with_small_image_stem(name, reference):
    ours = models.build(name, input_shape=(3, 32, 32), num_classes=10)
    ref = reference(weights=None, num_classes=10)
    ref.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert isinstance(ours.maxpool, nn.Identity)


def test_cnn_has_no_bias_and_no_batchnorm():
    model = _build("cnn")
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert not [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 8  # VGG11's conv stack


@pytest.mark.parametrize("train_mode", [False, True])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_pruned_channels_output_exactly_zero(name, train_mode):
    model = _build(name)
    _randomise_batchnorm(model)
    pruned = prune.prune_structured(model, 0.5).train(train_mode)
    outputs: dict[nn.Module, torch.Tensor] = {}

    def keep(module, args, out):
        outputs[module] = out.clone()  # torchvision adds the residual to a BN output in place

    groups = prune.channel_groups(pruned)
    for group in groups:
        for unit in group:
            _output_module(unit).register_forward_hook(keep)
    for block in _blocks(pruned):
        block.register_forward_hook(keep)
    with torch.no_grad():
        feats = pruned.features(torch.randn(4, 3, 32, 32))

    stream_drop = {}  # the residual stream a layer writes to -> its pruned channels
    for group in groups:
        drop = _dropped(group[0][0])
        assert len(drop) == round(0.5 * group[0][0].weight.shape[0])
        for unit in group:
            assert torch.equal(_dropped(unit[0]), drop)
            assert (outputs[_output_module(unit)][:, drop] == 0).all()
            stream_drop[unit[0]] = drop
    for block in _blocks(pruned):  # the sum of tied branches, after the block's ReLU
        assert (outputs[block][:, stream_drop[_last_conv(block)]] == 0).all()
    assert (feats[:, stream_drop[prune.prunable_layers(pruned)[-1]]] == 0).all()  # the last layer feeds the head


@pytest.mark.parametrize("name", ALL_MODELS)
def test_pruning_nothing_changes_nothing(name):
    model = _build(name).eval()
    _randomise_batchnorm(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        for method in prune.METHODS.values():
            assert torch.equal(method(model, 0.0).eval()(x), expected)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_structured_pruning_drops_lowest_l1_channels(name):
    model = _build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune.prune_structured(model, 0.3)
    for group, pgroup in zip(prune.channel_groups(model), prune.channel_groups(pruned)):
        # a group's score is the summed L1 norm of its members' filters (Li et al. 2017)
        scores = sum(layer.weight.detach().abs().sum(dim=tuple(range(1, layer.weight.ndim))) for layer, _ in group)
        drop = _dropped(pgroup[0][0])
        kept = torch.ones(len(scores), dtype=torch.bool)
        kept[drop] = False
        assert len(drop) == round(0.3 * len(scores))
        assert scores[drop].max() <= scores[kept].min()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # a copy was pruned
    assert torch.equal(prune.prune_structured(model, 1.0).head.weight, model.head.weight)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_magnitude_pruning_zeroes_smallest_weights_of_every_layer(name):
    model = _build(name)
    pruned = prune.prune_magnitude(model, 0.5)
    layers = prune.prunable_layers(model)
    assert any(isinstance(m, nn.Conv2d) for m in layers) == (name != "fcn")
    for layer, player in zip(layers, prune.prunable_layers(pruned)):
        w, pw = layer.weight.detach().abs().flatten(), player.weight.detach().flatten()
        zero = pw == 0
        assert zero.sum() == round(0.5 * w.numel())
        assert w[zero].max() <= w[~zero].min()
    assert torch.equal(pruned.head.weight, model.head.weight)


class _TinyConvNet(nn.Module):
    """1x1 conv with 3 filters, ReLU, global average pooling, linear head: small enough to prune by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            # filter i reads input channel i; L1 norms 4, 2, 1
            self.conv.weight.copy_(torch.diag(torch.tensor([4.0, 2.0, 1.0])).view(3, 3, 1, 1))
            # logit0 = h0 + 0.5, logit1 = h1 + h2
            self.head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
            self.head.bias.copy_(torch.tensor([0.5, 0.0]))

    def features(self, x):
        return torch.relu(self.conv(x)).mean((2, 3))

    def forward(self, x):
        return self.head(self.features(x))


def test_prunability_matches_hand_computation():
    # four 2x2 images, constant per channel: features h = (4 x0, 2 x1, x2)
    values = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 3]])
    x = values[:, :, None, None].expand(4, 3, 2, 2)
    y = torch.tensor([0, 1, 1, 1])
    # unpruned logits (4.5, 0), (0.5, 2), (0.5, 1), (4.5, 5): all four right, Acc(f) = 1
    # q = 1/3 prunes filter 2 (L1 1): (4.5, 0) ok, (0.5, 2) ok, (0.5, 0) wrong, (4.5, 2) wrong -> P = 2/4
    # q = 2/3 prunes filters 2 and 1: only the class-0 image stays right -> P = 1/4
    mean, ratios = metrics.prunability(_TinyConvNet(), x, y, fractions=(1 / 3, 2 / 3))
    assert ratios == [0.5, 0.25]
    assert mean == 0.375


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_channel_groups_match_torch_pruning(name):
    tp = pytest.importorskip("torch_pruning")
    model = _build(name).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    for group in prune.channel_groups(model):
        ours = {m for unit in group for m in unit if m is not None}
        for conv, _ in group:
            coupled = {item.dep.target.module
                       for item in graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=[0])
                       if item.dep.handler in (tp.prune_conv_out_channels, tp.prune_batchnorm_out_channels)}
            assert coupled == ours
