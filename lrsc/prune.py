"""Pruning: structured (whole neurons or filters, by L1 norm, Li et al. 2017) and unstructured magnitude.

Both return a pruned *copy*; the output layer (``model.head``, or a model's last ``nn.Linear``
where it has no ``head``: :func:`lrsc.models.output_layer`) is never pruned.

Structured pruning zeroes *channels*: a neuron of an ``nn.Linear`` (its incoming weight row)
or a filter of an ``nn.Conv2d`` (its ``(C_in, kH, kW)`` weights), together with the channel's
bias and the scale and shift of the ``nn.BatchNorm2d`` that normalises it. The channel then
outputs exactly zero on every input: the layer's output is 0, the BatchNorm's is
``0 * (0 - running_mean) / sqrt(running_var + eps) + 0 = 0`` (eval mode; in training mode the
batch mean and variance are 0 and the result is the same), and ReLU keeps 0 at 0.

Channels tied by a residual addition (the stem, the downsample convs and each block's last conv
that feed one residual stream of a ResNet) are pruned together: zeroing the channel in only some
of the summed branches would leave the sum non-zero.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from lrsc.errors import ConfigError
from lrsc.models import output_layer

# One channel-producing layer and the BatchNorm that normalises its output (None if there is none).
Unit = tuple[nn.Linear | nn.Conv2d, nn.BatchNorm2d | None]


def prunable_layers(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    """Every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` except its output layer (:func:`lrsc.models.output_layer`)."""
    head = output_layer(model)
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m is not head]


def _units(model: nn.Module) -> list[Unit]:
    """Each prunable layer with its BatchNorm, in registration order.

    A BatchNorm belongs to the layer registered just before it, as in torchvision's models and
    ours (``conv1, bn1, conv2, bn2, ...``, ``downsample = Sequential(conv, bn)``).
    """
    units: list[list] = []
    prunable = set(map(id, prunable_layers(model)))
    for m in model.modules():
        if id(m) in prunable:
            units.append([m, None])
        elif isinstance(m, nn.BatchNorm2d):
            if not (units and units[-1][1] is None and isinstance(units[-1][0], nn.Conv2d)
                    and units[-1][0].out_channels == m.num_features):
                # a BatchNorm we cannot place would keep a pruned channel's shift: refuse, do not guess
                raise ValueError(f"cannot pair BatchNorm {m} with the conv layer before it")
            units[-1][1] = m
    return [(layer, bn) for layer, bn in units]


def channel_groups(model: nn.Module) -> list[list[Unit]]:
    """The prunable layers of ``model`` grouped by tied output channels, each with its BatchNorm.

    Channel ``i`` of every member of a group is pruned together. A layer is a group of its own
    unless it feeds a residual addition: in a torchvision ``ResNet`` each residual stream (the stem,
    or a stage's first-block downsample conv, plus the last conv of every block adding onto that
    stream) is one group. Groups come in the order of their first member, members in registration
    order.
    """
    # leader[id(layer)]: the layer whose group it joins; untied layers lead themselves.
    leader: dict[int, nn.Module] = {}
    if isinstance(model, ResNet):
        stream = model.conv1
        for block in (b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage):
            if block.downsample is not None:  # the identity is replaced, so a new stream starts here
                stream = block.downsample[0]
            last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
            leader[id(last)] = stream
    groups: dict[int, list[Unit]] = {}
    for layer, bn in _units(model):
        groups.setdefault(id(leader.get(id(layer), layer)), []).append((layer, bn))
    return list(groups.values())


def _check_fraction(fraction: float) -> None:
    if not 0 <= fraction <= 1:
        raise ConfigError(f"pruning fraction must lie in [0, 1], got {fraction}")


def channel_scores(group: list[Unit]) -> torch.Tensor:
    """L1 norm of each output channel's incoming weights, summed over the group's layers; shape
    ``(channels,)``. BatchNorm parameters and biases do not count (Li et al. 2017)."""
    return sum(layer.weight.detach().abs().flatten(1).sum(1) for layer, _ in group)


@torch.no_grad()
def prune_structured(model: nn.Module, fraction: float, scope: str = "layer") -> nn.Module:
    """Copy of ``model`` with channels zeroed by their ``channel_scores`` (smallest first; ties:
    lowest index). For an FCN a channel is a hidden neuron, for a conv net a filter.

    ``scope="layer"``: ``round(fraction * channels)`` channels of every channel group (see
    ``channel_groups``), as Li et al. 2017. ``scope="global"``: ``round(fraction * total)``
    channels of the whole network, ranked together by their score per weight (the L1 norm over
    the number of incoming weights, so that layers of different fan-in compare); a layer may
    then lose more or fewer than ``fraction`` of its channels, all of them included.
    """
    _check_fraction(fraction)
    if scope not in ("layer", "global"):
        raise ConfigError(f"pruning scope must be 'layer' or 'global', got {scope!r}")
    pruned = copy.deepcopy(model)
    groups = channel_groups(pruned)
    scores = [channel_scores(group) for group in groups]
    if scope == "layer":
        drops = [torch.argsort(s, stable=True)[: round(fraction * len(s))] for s in scores]
    else:
        per_weight = torch.cat([s / sum(layer.weight[0].numel() for layer, _ in g) for s, g in zip(scores, groups)])
        owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)])
        index = torch.cat([torch.arange(len(s)) for s in scores])
        chosen = torch.argsort(per_weight, stable=True)[: round(fraction * len(per_weight))]
        drops = [index[chosen[owner[chosen] == i]] for i in range(len(groups))]
    for group, drop in zip(groups, drops):
        for layer, bn in group:
            params = [layer.weight, layer.bias] + ([bn.weight, bn.bias] if bn is not None else [])
            for p in params:
                if p is not None:  # no bias, or a BatchNorm without affine parameters
                    p[drop] = 0
    return pruned


@torch.no_grad()
def prune_magnitude(model: nn.Module, fraction: float) -> nn.Module:
    """Copy of ``model`` with the ``round(fraction * size)`` smallest-magnitude weights of
    every prunable layer zeroed (unstructured; the supplement's Fig. 22 alternative).
    Biases and BatchNorm parameters are left as they are."""
    _check_fraction(fraction)
    pruned = copy.deepcopy(model)
    for layer in prunable_layers(pruned):
        w = layer.weight.view(-1)
        w[torch.argsort(w.abs(), stable=True)[: round(fraction * w.numel())]] = 0
    return pruned


METHODS: dict[str, Callable[[nn.Module, float], nn.Module]] = {
    "structured": prune_structured,
    "magnitude": prune_magnitude,
}
