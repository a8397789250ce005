"""Computing a run's variables: what each declared :class:`lrsc.variables.Variable` is computed from.

An :class:`Evaluation` holds one trained run (its config, model, unbiased test set and, after
training, its :class:`lrsc.train.TrainResult`) and computes each shared part once, on first
use: the test set's features and logits, the random inputs of the activation statistics,
the attributions, the pruning curve, the last-layer retraining. With ``metrics.val_frac`` > 0
a validation split is held out of the unbiased test set (:func:`holdout`): the validation
variables and the retraining see only it, every other variable only the rest. :func:`evaluate` returns the values of the registered
variables. A model whose weights are not finite (a diverged run) gets NaN for every model
variable, each in its declared shape: a diverged run is a result, stored like any other.
"""
from __future__ import annotations

import math
from functools import cached_property
from typing import Callable

import numpy as np
import torch
from torch import nn

from lrsc import dfr, metrics, variables
from lrsc.attribution import background_masks, background_share, integrated_gradients, region_shares
from lrsc.datasets import Split
from lrsc.models import predict
from lrsc.seeding import generator
from lrsc.stopping import TrainResult, finite_params


class Evaluation:
    """What the variables of one trained run are computed from; each part is computed once, on
    first use. ``result`` is None when only model variables are being (re)computed.

    Parts a variable's ``compute`` may use: ``run`` (the config), ``cfg`` (its metrics
    section), ``model``, ``test`` (the unbiased test :class:`Split`, less the validation split),
    ``val`` (the validation split, None without one), ``outputs`` (features ``(n, d)`` and
    logits ``(n, K)`` of the whole of ``test``), ``val_outputs``, ``retrained`` (``test``'s
    logits after last-layer retraining on ``val``), ``act_index`` / ``act`` (the
    ``metrics.n_act`` random test inputs and their features), ``attributions``, ``shares``,
    ``prune`` (prunability and the ``P_q`` curve), ``result`` (the training outcome).
    """

    def __init__(self, run: dict, model: nn.Module, test_set: Split, result: TrainResult | None = None):
        self.run, self.model, self.result = run, model, result
        self.cfg = run["metrics"]
        self.test, self.val = holdout(test_set, run)

    @cached_property
    def finite(self) -> bool:
        return finite_params(self.model)

    @cached_property
    def width(self) -> int:
        """Width ``d`` of the penultimate representation (the ``neuron`` dim), from one test input."""
        return predict(self.model, self.test.x[:1])[0].shape[1]

    @cached_property
    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features ``(n, d)`` and logits ``(n, K)`` of the whole unbiased test set."""
        return predict(self.model, self.test.x)

    @cached_property
    def val_outputs(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Penultimate features and logits of the validation split (None without one)."""
        return predict(self.model, self.val.x) if self.val is not None else None

    @cached_property
    def retrained(self) -> torch.Tensor | None:
        """Logits of ``test`` from a last-layer head retrained on a group-balanced subset of the
        validation split (:func:`lrsc.dfr.retrained_logits`, ``metrics.dfr_c``); None without a
        validation split, or one that lacks a group."""
        if self.val is None:
            return None
        return dfr.retrained_logits(self.val_outputs[0], self.val.y, self.val.group, self.val.num_groups,
                                    self.val.num_classes, self.cfg["dfr_c"], generator(self.run["seed"], "dfr"),
                                    self.outputs[0])

    def on_val(self, score: Callable[[torch.Tensor, Split], float]) -> float:
        """``score(logits, split)`` on the validation split, NaN without one."""
        return score(self.val_outputs[1], self.val) if self.val is not None else math.nan

    def on_retrained(self, score: Callable[[torch.Tensor, Split], float]) -> float:
        """``score(logits, test)`` of the retrained head on ``test``, NaN where there is none."""
        logits = self.retrained
        return score(logits, self.test) if logits is not None else math.nan

    def _pick(self, purpose: str, n: int) -> torch.Tensor:
        g = generator(self.run["seed"], purpose)
        return torch.randperm(len(self.test), generator=g)[:n].to(self.test.x.device)

    @cached_property
    def act_index(self) -> torch.Tensor:
        """The ``metrics.n_act`` random unbiased test inputs of the activation statistics."""
        return self._pick("act_inputs", self.cfg["n_act"])

    @cached_property
    def act(self) -> torch.Tensor:
        """Penultimate representations of the ``act_index`` inputs, ``(n_act, d)``."""
        return self.outputs[0][self.act_index]

    @cached_property
    def shuffled_labels(self) -> torch.Tensor:
        """The class labels of the ``act_index`` inputs, randomly permuted (the CSI's sparsity control)."""
        g = generator(self.run["seed"], "shuffled_labels")
        return self.test.y[self.act_index][torch.randperm(len(self.act_index), generator=g).to(self.act.device)]

    @cached_property
    def selectivity(self) -> dict[str, np.ndarray]:
        """Per-neuron CSI and BSI of the trained model on the ``act_index`` inputs, each ``(d,)``."""
        y, b = self.test.y[self.act_index], self.test.b[self.act_index]
        return {"csi": metrics.selectivity(self.act, y).cpu().numpy(), "bsi": metrics.selectivity(self.act, b).cpu().numpy()}

    @cached_property
    def _attr_index(self) -> torch.Tensor:
        return self._pick("attr_inputs", self.cfg["n_attr"])

    @cached_property
    def attributions(self) -> torch.Tensor:
        """Integrated Gradients of the true class's logit on ``metrics.n_attr`` unbiased test inputs,
        shape ``(n_attr, *input_shape)``; with ``n_attr`` 0 none are computed (the attribution
        variables are then NaN: a sweep whose claims use none skips their cost)."""
        pick = self._attr_index
        if not len(pick):
            return torch.empty((0, *self.test.x.shape[1:]), device=self.test.x.device)
        return integrated_gradients(self.model, self.test.x[pick], self.test.y[pick], n_steps=self.cfg["ig_steps"])

    @cached_property
    def background(self) -> float:
        """Mean share of |IG| on the background of the ``attributions`` inputs (``metrics.bg_mask``), NaN without masks."""
        if self.cfg["bg_mask"] == "none" or not self.cfg["n_attr"] or self.test.x.dim() != 4 or self.test.x.shape[1] != 3:
            return math.nan
        masks = background_masks(self.test.x[self._attr_index], self.cfg["bg_mask"], self.cfg["deeplab_weights"])
        return torch.nanmean(background_share(self.attributions.cpu(), masks)).item()

    @cached_property
    def shares(self) -> dict[str, float]:
        return region_shares(self.attributions, self.test.regions) if self.test.regions else {}

    @cached_property
    def prune(self) -> tuple[float, np.ndarray]:
        value, curve = metrics.prunability(self.model, self.test.x, self.test.y, self.cfg["prune_fractions"],
                                           scope=self.cfg["prune_scope"])
        return value, np.asarray(curve)

    def max_record(self, name: str) -> float:
        """The largest value of training record ``name`` (NaN for a run with no record)."""
        values = self.result.records[name].numpy()
        return float(np.nanmax(values, initial=-np.inf)) if len(values) else math.nan

    def snapshots(self, name: str) -> np.ndarray:
        """``(snapshot, neuron)`` array of snapshot ``name`` at each of ``metrics.snapshot_steps``
        (NaN for steps the run did not reach)."""
        taken = dict(self.result.snapshots)
        out = np.full((len(self.cfg["snapshot_steps"]), self.width), np.nan, dtype=np.float32)
        for i, step in enumerate(self.cfg["snapshot_steps"]):
            if step in taken:
                out[i] = taken[step][name].cpu().numpy()
        return out


def neuron_selectivity(run: dict, test_set: Split) -> Callable[[nn.Module], dict[str, torch.Tensor]]:
    """The snapshot taken during training: per-neuron CSI and BSI of the penultimate layer on
    the run's ``metrics.n_act`` unbiased test inputs (the inputs of ``act_comp``)."""
    ev = Evaluation(run, nn.Identity(), test_set)
    pick = ev.act_index
    x, y, b = ev.test.x[pick], ev.test.y[pick], ev.test.b[pick]

    def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
        h = predict(model, x)[0]
        return {"csi": metrics.selectivity(h, y), "bsi": metrics.selectivity(h, b)}

    return snapshot


def holdout(test_set: Split, run: dict) -> tuple[Split, Split | None]:
    """The unbiased test set less its validation split, and the validation split: a random
    ``metrics.val_frac`` of the test samples, drawn from the run's seed (so that the runs of one
    seed share it), or None where ``val_frac`` is 0 (the test set is then whole)."""
    frac = run["metrics"].get("val_frac", 0.0)  # a run stored before the setting existed held nothing out
    if not frac:
        return test_set, None
    n = len(test_set)
    order = torch.randperm(n, generator=generator(run["seed"], "validation")).to(test_set.y.device)
    cut = max(1, min(n - 1, round(frac * n)))
    return test_set.take(order[cut:]), test_set.take(order[:cut])


def _nan_like(ev: Evaluation, var: variables.Variable) -> np.ndarray:
    """NaN in ``var``'s declared shape for this run (a model variable has no ``step`` dim)."""
    sizes = {"prune_fraction": len(ev.cfg["prune_fractions"]), "snapshot": len(ev.cfg["snapshot_steps"]),
             "neuron": ev.width}
    return np.full([sizes[d] for d in var.dims], np.nan, dtype=var.dtype)


def evaluate(run: dict, model: nn.Module, test_set: Split, result: TrainResult | None,
             names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The values of the registered variables ``names`` (default: all; only ``model`` ones when
    ``result`` is None) of one trained run, as numpy arrays; model variables are NaN for a model
    with non-finite weights."""
    ev = Evaluation(run, model, test_set, result)
    chosen = [variables.get(n) for n in names] if names else \
        [v for v in variables.declared() if result or v.kind == "model"]
    out = {}
    for var in chosen:
        value = _nan_like(ev, var) if var.kind == "model" and not ev.finite else var.compute(ev)
        out[var.name] = np.asarray(value, dtype=var.dtype)
    return out


def measure(model: nn.Module, test_set: Split, names: tuple[str, ...] | None = None, seed: int = 0,
            **metric_settings) -> dict[str, np.ndarray]:
    """The registered model variables ``names`` (default: all) of a model you trained yourself, on
    its unbiased ``test_set``, with the metric settings' defaults changed by ``metric_settings``
    (e.g. ``n_attr=100``); ``seed`` draws the random inputs of the activation statistics."""
    from lrsc.settings import MetricSettings

    run = {"seed": seed, "metrics": MetricSettings.from_config(metric_settings).to_config()}
    return evaluate(run, model, test_set, None, names)
