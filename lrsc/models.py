"""Models, built by name: ``models.build("fcn", input_shape=(16,), num_classes=2, width=200)``.

Every model exposes ``features(x)``, its penultimate representation (post-activation),
and ``head``, the output layer that pruning never touches.

Registry: ``fcn`` (vectors or images, flattened), ``cnn`` (VGG11-like), ``resnet18``,
``resnet50`` and ``wrn101_2`` (torchvision's). The convolutional models take images of
shape ``(C, H, W)`` with H, W around 28–32 px, and a float ``width`` multiplier: a layer
the paper gives ``c`` channels gets ``max(1, round(c * width))``.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from lrsc.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DATA_ARGS = ("input_shape", "num_classes")  # supplied by the dataset, not by the user


def register(name: str):
    def add(fn):
        _REGISTRY[name] = fn
        return fn

    return add


def names() -> list[str]:
    return sorted(_REGISTRY)


def _builder(name: str):
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def params_of(name: str) -> dict[str, inspect.Parameter]:
    """The user-tunable parameters of model ``name``, by name."""
    sig = inspect.signature(_builder(name))
    return {k: p for k, p in sig.parameters.items() if k not in _DATA_ARGS}


def check(name: str, input_shape: tuple[int, ...], num_classes: int, params: dict) -> None:
    """Validate model ``name`` with ``params`` for inputs of shape ``input_shape`` without
    allocating it: the model is built on the meta device and run on a batch of two meta
    inputs, so a wrong parameter or an input it cannot take is a ConfigError before any run."""
    from lrsc.config import check_params

    check_params(f"model {name!r}", params, params_of(name))
    try:
        with torch.device("meta"):
            model = _builder(name)(input_shape=tuple(input_shape), num_classes=num_classes, **params)
            model.eval()(torch.empty(2, *input_shape))
    except ConfigError:
        raise
    except Exception as e:  # the model's own code refused the shape: say so in the config's terms
        raise ConfigError(f"model {name!r} with model_params {params} cannot take inputs of shape {tuple(input_shape)}: "
                          f"{type(e).__name__}: {e}") from None


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **params) -> nn.Module:
    """Build model ``name`` for inputs of shape ``input_shape`` (no batch dim)."""
    from lrsc.config import check_params

    check_params(f"model {name!r}", params, params_of(name))
    return _builder(name)(input_shape=tuple(input_shape), num_classes=num_classes, **params)


class FCN(nn.Module):
    """Fully connected ReLU network: ``depth`` hidden layers of ``width`` units, then ``head``.

    Input of any shape ``(n, *input_shape)`` is flattened; output is ``(n, num_classes)`` logits.
    """

    def __init__(self, in_features: int, num_classes: int, depth: int, width: int, bias: bool):
        super().__init__()
        dims = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], num_classes, bias=bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation, post-ReLU; shape ``(n, width)``."""
        h = x.flatten(1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register("fcn")
def fcn(*, input_shape: tuple[int, ...], num_classes: int, depth: int = 2, width: int = 200, bias: bool = False) -> FCN:
    """FCN with ``depth`` hidden layers of ``width`` ReLU units; ``bias`` toggles bias terms (paper: off)."""
    if depth < 1 or width < 1:
        raise ConfigError(f"fcn needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
    return FCN(math.prod(input_shape), num_classes, depth, width, bias)


def _channels(c: int, width: float) -> int:
    """Channel count of a layer that has ``c`` channels at ``width`` 1.0."""
    return max(1, round(c * width))


def _in_channels(name: str, input_shape: tuple[int, ...], width: float) -> int:
    """Check a conv model's arguments; return the number of input channels."""
    if len(input_shape) != 3:
        raise ConfigError(f"{name} needs image inputs of shape (C, H, W), got input_shape={input_shape}")
    if not width > 0:
        raise ConfigError(f"{name} needs width > 0, got width={width}")
    return input_shape[0]


# VGG11's conv stack (Simonyan & Zisserman 2015, config "A") less its final max-pool, whose place
# global average pooling takes: four 2x2 pools take 32 px and 28 px (ceil mode) to 2 px.
_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)


class CNN(nn.Module):
    """VGG11-like conv net without bias terms or BatchNorm: 3x3 convs + ReLU, 2x2 max-pools,
    global average pooling, then one linear layer ``head``.

    Input ``(n, C, H, W)``; output ``(n, num_classes)`` logits. Global average pooling (not
    flattening) keeps ``features`` one value per last-layer filter, whatever H and W are, so a
    pruned filter is exactly one zero feature.
    """

    def __init__(self, in_channels: int, num_classes: int, width: float):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in _VGG11:
            if v == "M":
                # ceil mode: odd sizes (28 -> 14 -> 7 -> 4 -> 2) never drop a row, and no size reaches 0
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                c_out = _channels(v, width)
                conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                # He init (fan-in): without BatchNorm, it is what keeps the signal's scale through 8 ReLU layers
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
                layers += [conv, nn.ReLU()]
                c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last conv layer's post-ReLU maps, averaged over space; shape ``(n, round(512 * width))``."""
        return self.convs(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register("cnn")
def cnn(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> CNN:
    """VGG11-like CNN (no bias, no BatchNorm) with every layer's channels scaled by ``width``."""
    return CNN(_in_channels("cnn", input_shape, width), num_classes, width)


class SmallImageResNet(ResNet):
    """torchvision's ResNet for 28–32 px inputs, at a channel ``width`` multiplier.

    As for CIFAR (He et al. 2016): the stem is a 3x3 stride-1 conv and has no max-pool, so a
    32 px input reaches layer4 at 4 px. ``head`` is torchvision's ``fc``. Input
    ``(n, C, H, W)``; output ``(n, num_classes)`` logits.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], in_channels: int,
                 num_classes: int, width: float, width_per_group: int = 64):
        self._width = width  # read by _make_layer during super().__init__
        super().__init__(block, layers, num_classes=num_classes, width_per_group=width_per_group)
        stem = _channels(64, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.Identity()
        self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int = 1, dilate: bool = False) -> nn.Sequential:
        # torchvision builds layer1..4 with planes 64, 128, 256, 512, after setting inplanes = 64
        # for its stem; scale both here, so every block is built at the reduced width.
        if planes == 64:
            self.inplanes = _channels(64, self._width)
        return super()._make_layer(block, _channels(planes, self._width), blocks, stride, dilate)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """layer4's post-ReLU maps, average-pooled; shape ``(n, round(512 * width) * expansion)``
        (expansion: 1 for ResNet18, 4 for ResNet50 and WRN-101-2)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register("resnet18")
def resnet18(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's ResNet18 (BasicBlock, [2, 2, 2, 2]), small-image stem, channels x ``width``."""
    return SmallImageResNet(BasicBlock, [2, 2, 2, 2], _in_channels("resnet18", input_shape, width), num_classes, width)


@register("resnet50")
def resnet50(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's ResNet50 (Bottleneck, [3, 4, 6, 3]), small-image stem, channels x ``width``."""
    return SmallImageResNet(Bottleneck, [3, 4, 6, 3], _in_channels("resnet50", input_shape, width), num_classes, width)


@register("wrn101_2")
def wrn101_2(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's Wide ResNet-101-2 (Bottleneck, [3, 4, 23, 3], bottlenecks twice as wide),
    small-image stem, channels x ``width``."""
    return SmallImageResNet(Bottleneck, [3, 4, 23, 3], _in_channels("wrn101_2", input_shape, width), num_classes,
                            width, width_per_group=128)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``(n, d)`` and logits ``(n, num_classes)`` of ``x``, in chunks.

    Runs in eval mode and restores the model's previous mode.
    """
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for i in range(0, len(x), chunk):
        h = model.features(x[i:i + chunk])
        feats.append(h)
        logits.append(model.head(h))
    model.train(was_training)
    return torch.cat(feats), torch.cat(logits)
