"""Models, built by name: ``models.build("fcn", input_shape=(16,), num_classes=2, width=200)``.

A model is any ``nn.Module`` that maps ``(n, *input_shape)`` inputs to ``(n, num_classes)``
logits. Its penultimate representation and its output layer (the one pruning never touches)
are ``features(x)`` and ``head`` where it defines both, as every built-in model does;
otherwise its last ``nn.Linear`` is the output layer and that layer's input, taken by a
forward hook, the representation (:func:`output_layer`, :func:`features_and_logits`).

Registry: ``fcn`` (vectors or images, flattened), ``cnn`` (VGG11-like), ``resnet18``,
``resnet50`` and ``wrn101_2`` (torchvision's). The convolutional models take images of
shape ``(C, H, W)`` with H, W around 28–32 px, and a float ``width`` multiplier: a layer
the paper gives ``c`` channels gets ``max(1, round(c * width))``. Transformers: ``swin_t``
(torchvision's Swin-T, optionally from a local state dict) and ``vit_small`` (a reduced ViT
for CPU runs); what pruning means for them is said above :class:`SwinT`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from lrsc.datasets import as_inputs
from lrsc.errors import ConfigError
from lrsc.registry import Registry, normalise_params

_DATA_ARGS = ("input_shape", "num_classes")  # supplied by the dataset, not by the user
REGISTRY: Registry[Callable[..., nn.Module]] = Registry("model")

# What one work unit of a model asks a cluster for (``lrsc sweep --engine slurm``: one job-array
# task), unless the sweep's ``resources`` or the ``--slurm-*`` options say otherwise; keys as a
# sweep file's ``resources`` (lrsc.engines.RESOURCE_KEYS). FCNs train on CPU cores (a unit stacks
# up to 32 of them); the convolutional models and the transformers on one GPU, with the host
# memory for a 60,000-image set and more. Not measured: a starting point for the full profile.
# ImageNet and CelebA at 128 px hold 59 and 32 GB of float32 images in the job's memory: their
# sweeps ask for more in their own ``resources``.
CPU_UNIT = {"gpus": 0, "cpus": 4, "mem_gb": 16, "time_min": 240}
GPU_UNIT = {"gpus": 1, "cpus": 4, "mem_gb": 32, "time_min": 720}
RESOURCES: dict[str, dict] = {}  # model name -> its unit's resources (models registered without any: the engine's)


def register(name: str, *, resources: dict | None = None, replace: bool = False) -> Callable:
    """Register a model builder as ``name``: ``@register("fcn")`` above it.

    The builder takes ``input_shape`` (one input, no batch dim) and ``num_classes``, then its
    own keyword parameters, each with a default whose type is the parameter's type, and
    returns an ``nn.Module`` giving ``(n, num_classes)`` logits; ``features(x)`` (the penultimate
    representation, ``(n, d)``) and ``head`` (the output layer, never pruned) are optional: without
    them, the last ``nn.Linear`` is the output layer and its input the representation (see
    :func:`features_and_logits`). It must also run under
    ``torch.device("meta")``: sweeps check every model there before training (so no
    ``.item()`` or data-dependent Python branches while building). A name already registered
    raises ConfigError unless ``replace``. A builder defined in a notebook or script travels
    to worker processes and cluster jobs with the sweep (see ``lrsc.extensions``).
    ``resources``: what one work unit of the model asks a cluster for (see :data:`RESOURCES`).
    """

    def add(fn):
        REGISTRY.add(name, fn, replace=replace)
        RESOURCES.pop(name, None)
        if resources:
            RESOURCES[name] = dict(resources)
        return fn

    return add


def names() -> list[str]:
    return REGISTRY.names()


def resources(name: str) -> dict:
    """What one work unit of model ``name`` asks a cluster for by default (``{}``: the engine's defaults)."""
    REGISTRY.get(name)  # an unknown name is a ConfigError listing the valid ones
    return dict(RESOURCES.get(name, {}))


def normalise(name: str, params: dict) -> dict:
    """``params`` of model ``name`` complete (defaults filled in) and typed."""
    return normalise_params(f"model {name!r}", REGISTRY.get(name), params, skip=_DATA_ARGS)


def check(name: str, input_shape: tuple[int, ...], num_classes: int, params: dict) -> None:
    """Validate model ``name`` with ``params`` for inputs of shape ``input_shape`` without
    allocating it: the model is built on the meta device and a batch of two meta inputs goes
    through :func:`features_and_logits`, so a wrong parameter, an input it cannot take, or
    logits or a representation of the wrong shape is a ConfigError before any run."""
    params = normalise(name, params)
    where = f"model {name!r} with model_params {params}"
    try:
        with torch.device("meta"):
            model = REGISTRY.get(name)(input_shape=tuple(input_shape), num_classes=num_classes, **params)
            feats, logits = features_and_logits(model.eval(), torch.empty(2, *input_shape), where)
    except ConfigError:
        raise
    except Exception as e:  # the model's own code refused the shape or the meta device: say so in the config's terms
        raise ConfigError(f"{where} cannot take inputs of shape {tuple(input_shape)} on the meta device, where sweeps "
                          f"check models before training: {type(e).__name__}: {' '.join(str(e).split())}") from None
    if tuple(logits.shape) != (2, num_classes):
        raise ConfigError(f"{where} gives outputs of shape {tuple(logits.shape)[1:]} for one input of shape "
                          f"{tuple(input_shape)}; a model must give one logit per class, ({num_classes},)")
    if feats.dim() != 2:
        raise ConfigError(f"{where}: its penultimate representation has shape {tuple(feats.shape)[1:]} per input; the "
                          f"metrics need a vector per input (define features(x) giving (n, d), or flatten before "
                          f"the last nn.Linear)")


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **params) -> nn.Module:
    """Build model ``name`` for inputs of shape ``input_shape`` (no batch dim)."""
    return REGISTRY.get(name)(input_shape=tuple(input_shape), num_classes=num_classes, **normalise(name, params))


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


@register("fcn", resources=CPU_UNIT)
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


@register("cnn", resources=GPU_UNIT)
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


@register("resnet18", resources=GPU_UNIT)
def resnet18(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's ResNet18 (BasicBlock, [2, 2, 2, 2]), small-image stem, channels x ``width``."""
    return SmallImageResNet(BasicBlock, [2, 2, 2, 2], _in_channels("resnet18", input_shape, width), num_classes, width)


@register("resnet50", resources={**GPU_UNIT, "time_min": 1440})
def resnet50(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's ResNet50 (Bottleneck, [3, 4, 6, 3]), small-image stem, channels x ``width``."""
    return SmallImageResNet(Bottleneck, [3, 4, 6, 3], _in_channels("resnet50", input_shape, width), num_classes, width)


@register("wrn101_2", resources={**GPU_UNIT, "time_min": 2880})
def wrn101_2(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> SmallImageResNet:
    """torchvision's Wide ResNet-101-2 (Bottleneck, [3, 4, 23, 3], bottlenecks twice as wide),
    small-image stem, channels x ``width``."""
    return SmallImageResNet(Bottleneck, [3, 4, 23, 3], _in_channels("wrn101_2", input_shape, width), num_classes,
                            width, width_per_group=128)


PREDICT_CHUNK = 8192  # most inputs per forward pass of predict
PREDICT_VALUES = 2**26  # most input values per pass (256 MB of float32), which bounds the activations of large images


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = PREDICT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``(n, d)`` and logits ``(n, num_classes)`` of ``x``, in chunks.

    A chunk holds ``chunk`` inputs, fewer for large inputs, so that it stays within
    :data:`PREDICT_VALUES` (a 128 px image: 1365 a chunk, where 8192 would need some 34 GB for
    one feature map of a ResNet's first layer; inputs of up to 8192 values keep 8192). uint8 pixel levels are made
    float32 chunk by chunk (:func:`lrsc.datasets.as_inputs`). Runs in eval mode and restores
    the model's previous mode.
    """
    chunk = max(1, min(chunk, PREDICT_VALUES // max(1, x[0].numel()))) if len(x) else chunk
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for i in range(0, len(x), chunk):
        h, out = features_and_logits(model, as_inputs(x[i:i + chunk]))
        feats.append(h)
        logits.append(out)
    model.train(was_training)
    return torch.cat(feats), torch.cat(logits)


def output_layer(model: nn.Module) -> nn.Module:
    """The model's output layer, which pruning never touches: its ``head`` where it has one, else
    its last ``nn.Linear`` (in registration order, as ``model.modules()`` lists them)."""
    own = getattr(model, "head", None)
    if isinstance(own, nn.Module):
        return own
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"a {type(model).__name__} defines no head and holds no nn.Linear: give the model an "
                          f"output layer `head` and a method features(x), or end it with an nn.Linear")
    return linears[-1]


def features_and_logits(model: nn.Module, x: torch.Tensor, where: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate representation ``(n, d)`` and logits ``(n, num_classes)`` of inputs ``x``.

    A model with ``features(x)`` and ``head`` gives ``head(features(x))``. Any other model runs
    its own ``forward`` while a forward hook takes the input of :func:`output_layer`, flattened
    per input; that layer must run once per forward pass (a layer used twice has no one
    representation), else ConfigError naming ``where`` (default: the model's class).
    """
    if callable(getattr(model, "features", None)) and isinstance(getattr(model, "head", None), nn.Module):
        h = model.features(x)
        return h, model.head(h)
    taken: list[torch.Tensor] = []
    handle = output_layer(model).register_forward_pre_hook(lambda layer, args: taken.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if len(taken) != 1:
        raise ConfigError(f"{where or type(model).__name__}: its last nn.Linear ran {len(taken)} times in one forward "
                          f"pass, so its input is no one penultimate representation; define features(x) and head")
    return taken[0].flatten(1), logits


# ----- transformers -----
#
# What structured pruning (lrsc.prune) means for them: it zeroes output channels of every
# nn.Linear and nn.Conv2d but ``head``: one hidden neuron of an MLP (which then outputs exactly
# zero: GELU(0) = 0), one query, key or value coordinate of an attention layer, one output
# coordinate of an attention projection or an MLP's second layer, one channel of the patch
# embedding (and, for Swin, of a patch-merging layer). The last three write into the residual
# stream, which every block adds onto and LayerNorm re-centres, so there pruning removes that
# layer's contribution to the channel, not the channel itself; unlike a ResNet's, the residual
# stream is not tied across blocks into one group. Only the MLP hidden neurons and the q/k/v
# coordinates are units that fall silent.


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"{name} needs image inputs of shape (C, H, W), got input_shape={input_shape}")
    return input_shape  # type: ignore[return-value]


class SwinT(nn.Module):
    """torchvision's Swin-T (Liu et al. 2021; ``torchvision.models.swin_t``) as ``net``, behind the
    interface of the other models (torchvision's own ``features`` is its stage stack, so the model
    is wrapped rather than subclassed; a torchvision state dict loads into ``net``).

    ``features(x)``: the last stage's tokens after the final LayerNorm, averaged over space;
    shape ``(n, 768)``. They are not post-ReLU, so they are rarely exactly zero. ``head`` is
    torchvision's ``Linear(768, num_classes)``. Input ``(n, C, H, W)``; Swin-T's patch size 4 and
    three 2x patch merges take H, W to ``ceil(H / 32)``: 224 px (ImageNet) gives 7 x 7 tokens,
    32 px gives 1 x 1 (the 7 x 7 windows then cover the whole map; torchvision pads odd maps).
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        from torchvision.models import swin_t as tv_swin_t

        self.net = tv_swin_t(num_classes=num_classes)
        if in_channels != 3:
            self.net.features[0][0] = nn.Conv2d(in_channels, 96, kernel_size=4, stride=4)

    @property
    def head(self) -> nn.Linear:
        return self.net.head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        return torch.flatten(net.avgpool(net.permute(net.norm(net.features(x)))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _load_weights(model: SwinT, path: str) -> None:
    """Load a torchvision Swin-T state dict (e.g. ImageNet's ``swin_t-704ceda3.pth``) into ``model.net``,
    except the parameters whose shape the task changes (the head for another number of classes,
    the patch embedding for other input channels), which keep their fresh initialisation."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"swin_t: model_params.weights={path!r}: no such file; give the path of a torchvision Swin-T "
                          "state dict (.pth, e.g. ImageNet-1k's swin_t-704ceda3.pth from "
                          "https://download.pytorch.org/models/swin_t-704ceda3.pth), or '' to start from scratch")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ConfigError(f"swin_t: cannot read model_params.weights={path!r} as a state dict: {type(e).__name__}: "
                          f"{' '.join(str(e).split())}") from None
    state = {k.removeprefix("net."): v for k, v in state.items()}  # this wrapper's own state dicts load too
    own = model.net.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ConfigError(f"swin_t: {path} is not a torchvision Swin-T state dict: unexpected keys such as "
                          f"{unknown[:3]}")
    kept = {k: v for k, v in state.items() if v.shape == own[k].shape}
    missing = [k for k in own if k not in state]
    if missing:
        raise ConfigError(f"swin_t: {path} lacks keys such as {missing[:3]}; give a full torchvision Swin-T state dict")
    if not any(p.is_meta for p in model.parameters()):  # models.check builds on the meta device: nothing to copy
        model.net.load_state_dict(kept, strict=False)


@register("swin_t", resources={**GPU_UNIT, "mem_gb": 64, "time_min": 1440})
def swin_t(*, input_shape: tuple[int, ...], num_classes: int, weights: str = "") -> SwinT:
    """torchvision's Swin-T for ``(C, H, W)`` images (any H, W >= 4; meant for >= 32), with a
    ``num_classes`` head. ``weights``: path of a local torchvision Swin-T state dict to start
    from (the paper starts from ImageNet-1k weights for CelebA and Waterbirds); the head (and
    the patch embedding for C != 3) is left freshly initialised when its shape differs.
    Note torchvision's stochastic depth (0.2) is on in training mode."""
    c, _, _ = _image_shape("swin_t", input_shape)
    model = SwinT(c, num_classes)
    if weights:
        _load_weights(model, weights)
    return model


class Attention(nn.Module):
    """Multi-head self-attention written out (no fused kernels, so ``torch.func.vmap`` can stack models)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + fc2(gelu(fc1(norm2(x))))``."""

    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """A small Vision Transformer (Dosovitskiy et al. 2021) for CPU-sized runs.

    Non-overlapping ``patch_size`` patches are embedded by a strided conv, a learned position
    embedding is added, ``depth`` pre-norm blocks follow, then a final LayerNorm; tokens are
    averaged (no class token) and ``head`` is a linear classifier. No BatchNorm, no dropout and
    no buffers. Input ``(n, C, H, W)`` with H and W multiples of ``patch_size``; output
    ``(n, num_classes)`` logits. Init: weights truncated normal (std 0.02), biases zero.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, patch_size: int, depth: int,
                 width: int, heads: int, mlp_ratio: float):
        super().__init__()
        c, h, w = input_shape
        self.embed = nn.Conv2d(c, width, patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.zeros(1, (h // patch_size) * (w // patch_size), width))
        self.blocks = nn.ModuleList(Block(width, heads, max(1, round(mlp_ratio * width))) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(self.pos, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the final LayerNorm, averaged; shape ``(n, width)``."""
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register("vit_small", resources=GPU_UNIT)
def vit_small(*, input_shape: tuple[int, ...], num_classes: int, patch_size: int = 4, depth: int = 4,
              width: int = 128, heads: int = 4, mlp_ratio: float = 2.0) -> ViT:
    """A reduced ViT: ``depth`` blocks of ``width`` channels and ``heads`` heads, MLPs
    ``mlp_ratio`` times as wide, on ``patch_size`` patches (3x32x32: 64 tokens; 3x64x32: 128).
    About 0.55 M parameters at the defaults; a few hundred SGD steps of batch 100 take minutes
    on a CPU."""
    c, h, w = _image_shape("vit_small", input_shape)
    if min(patch_size, depth, width, heads) < 1 or not mlp_ratio > 0:
        raise ConfigError(f"vit_small needs patch_size, depth, width, heads >= 1 and mlp_ratio > 0, got "
                          f"patch_size={patch_size}, depth={depth}, width={width}, heads={heads}, "
                          f"mlp_ratio={mlp_ratio}")
    if width % heads:
        raise ConfigError(f"vit_small: width={width} must be a multiple of heads={heads}")
    if h % patch_size or w % patch_size:
        raise ConfigError(f"vit_small: the image sides {h} x {w} must be multiples of patch_size={patch_size}")
    return ViT((c, h, w), num_classes, patch_size, depth, width, heads, mlp_ratio)
