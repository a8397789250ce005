"""What a run stores: every result variable, declared once.

A :class:`Variable` names a result, says what it means and what it is computed on, gives
the function that computes it and its extra dims. The sweep computes every declared
variable of each run (:func:`evaluate`), the store writes its definition into the
results' attrs and collects it, and the report and plots take their labels from it, so a
new metric is one entry of :data:`VARIABLES`.

Two kinds: ``model`` variables are computed from the trained model (and can be completed
later from a run's stored weights); ``training`` variables come from the training run
itself (its outcome, its per-step records, its snapshots).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from lrsc import metrics
from lrsc.attribution import background_masks, background_share, integrated_gradients, region_shares
from lrsc.datasets import Split
from lrsc.models import predict
from lrsc.seeding import generator
from lrsc.train import RECORDS, TrainResult, finite_params


class Evaluation:
    """What the variables of one trained run are computed from; each part is computed once,
    on first use. ``result`` is None when only model variables are being (re)computed."""

    def __init__(self, run: dict, model: nn.Module, test_set: Split, result: TrainResult | None = None):
        self.run, self.model, self.test, self.result = run, model, test_set, result
        self.cfg = run["metrics"]

    @cached_property
    def finite(self) -> bool:
        return finite_params(self.model)

    @cached_property
    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features ``(n, d)`` and logits ``(n, K)`` of the whole unbiased test set."""
        return predict(self.model, self.test.x)

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
    def attributions(self) -> torch.Tensor:
        """Integrated Gradients of the true class's logit on ``metrics.n_attr`` unbiased test inputs."""
        pick = self._pick("attr_inputs", self.cfg["n_attr"])
        return integrated_gradients(self.model, self.test.x[pick], self.test.y[pick], n_steps=self.cfg["ig_steps"])

    @cached_property
    def background(self) -> float:
        """Mean share of |IG| on the background of the ``attributions`` inputs (``metrics.bg_mask``), NaN without masks."""
        if self.cfg["bg_mask"] == "none" or self.test.x.dim() != 4 or self.test.x.shape[1] != 3:
            return math.nan
        pick = self._pick("attr_inputs", self.cfg["n_attr"])
        masks = background_masks(self.test.x[pick], self.cfg["bg_mask"], self.cfg["deeplab_weights"])
        return torch.nanmean(background_share(self.attributions.cpu(), masks)).item()

    @cached_property
    def shares(self) -> dict[str, float]:
        return region_shares(self.attributions, self.test.regions) if self.test.regions else {}

    @cached_property
    def prune(self) -> tuple[float, list[float]]:
        return metrics.prunability(self.model, self.test.x, self.test.y, self.cfg["prune_fractions"],
                                   scope=self.cfg["prune_scope"])

    def snapshots(self, name: str) -> np.ndarray:
        """``(snapshot, neuron)`` array of snapshot ``name`` at each of ``metrics.snapshot_steps``
        (NaN for steps the run did not reach)."""
        taken = dict(self.result.snapshots)
        width = max((len(v[name]) for v in taken.values()), default=0)
        out = np.full((len(self.cfg["snapshot_steps"]), width), np.nan, dtype=np.float32)
        for i, step in enumerate(self.cfg["snapshot_steps"]):
            if step in taken:
                out[i] = taken[step][name].cpu().numpy()
        return out


def neuron_selectivity(run: dict, test_set: Split) -> Callable[[nn.Module], dict[str, torch.Tensor]]:
    """The snapshot taken during training: per-neuron CSI and BSI of the penultimate layer on
    the run's ``metrics.n_act`` unbiased test inputs (the inputs of ``act_comp``)."""
    pick = Evaluation(run, nn.Identity(), test_set).act_index
    x, y, b = test_set.x[pick], test_set.y[pick], test_set.b[pick]

    def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
        h = predict(model, x)[0]
        return {"csi": metrics.selectivity(h, y), "bsi": metrics.selectivity(h, b)}

    return snapshot


@dataclass(frozen=True)
class Variable:
    """One result of a run.

    name: its name in ``results.nc``; definition: what it means (stored in the attrs); on: what
    it is computed on; label: a short axis label; kind: ``model`` or ``training`` (see the module
    docstring); compute: ``Evaluation -> value``; dims: its dims beyond the grid's (``step``,
    ``prune_fraction``, ``snapshot``, ``neuron``); dtype: numpy kind of its values.
    """

    name: str
    definition: str
    on: str
    label: str
    kind: str
    compute: Callable[[Evaluation], Any]
    dims: tuple[str, ...] = ()
    dtype: str = "float64"

    @property
    def fill(self) -> Any:
        """The value of a run that has none (not run, failed): NaN, False, 0 or ""."""
        return {"b": False, "i": 0, "U": "", "O": ""}.get(np.dtype(self.dtype).kind, np.nan)

    @property
    def description(self) -> str:
        return f"{self.definition} (on: {self.on})"


def _record(name: str) -> Callable[[Evaluation], np.ndarray]:
    return lambda ev: ev.result.records[name].numpy()


TEST = "the unbiased test set"
ACT = "penultimate activations of metrics.n_act random unbiased test inputs"
ATTR = "Integrated Gradients (zero baseline, metrics.ig_steps steps) of metrics.n_attr random unbiased test inputs"
STEPS = "the minibatch of every train.record_every-th training step"

VARIABLES: tuple[Variable, ...] = (
    Variable("test_acc", "unbiased test accuracy, fraction in [0, 1]", TEST, "unbiased test accuracy", "model",
             lambda ev: metrics.accuracy(ev.outputs[1], ev.test.y)),
    Variable("worst_group_acc", "smallest accuracy over the groups (y, b)", TEST, "worst-group accuracy", "model",
             lambda ev: metrics.worst_group_accuracy(ev.outputs[1], ev.test.y, ev.test.group)),
    Variable("prunability", "mean over metrics.prune_fractions q of P_q = Acc(f_q)/Acc(f), f_q with a fraction q of "
             "the neurons or filters of smallest L1 weight norm zeroed (per layer, or over the whole network with "
             "metrics.prune_scope = global)", TEST, "prunability", "model", lambda ev: ev.prune[0]),
    Variable("prune_curve", "P_q = Acc(f_q)/Acc(f) at each pruning fraction q (see prunability)", TEST,
             "accuracy kept after pruning", "model", lambda ev: np.asarray(ev.prune[1]), ("prune_fraction",)),
    Variable("act_comp", "mean q-compressibility 1 - ||h - h_(k)||/||h||, k = ceil(q d) with q = metrics.q", ACT,
             "activation compressibility", "model",
             lambda ev: torch.nanmean(metrics.q_compressibility(ev.act, ev.cfg["q"])).item()),
    Variable("act_sparsity", "mean fraction of exactly-zero activations", ACT, "activation sparsity", "model",
             lambda ev: metrics.sparsity(ev.act).mean().item()),
    Variable("act_pq_index", "mean PQ-index 1 - ||h||_1/(sqrt(d)||h||_2)", ACT, "activation PQ-index", "model",
             lambda ev: torch.nanmean(metrics.pq_index(ev.act)).item()),
    Variable("class_sep", "class separation R^2 (Kornblith et al. 2021, cosine distance)", ACT, "class separation R²",
             "model", lambda ev: metrics.class_separation(ev.act, ev.test.y[ev.act_index])),
    Variable("csi", "class-selectivity index, coverage-scaled, mean over the neurons that fire", ACT,
             "class selectivity (CSI)", "model", lambda ev: metrics.csi(ev.act, ev.test.y[ev.act_index])),
    Variable("bsi", "bias-selectivity index: the CSI with bias labels in place of class labels", ACT,
             "bias selectivity (BSI)", "model", lambda ev: metrics.bsi(ev.act, ev.test.b[ev.act_index])),
    Variable("csi_shuffled", "the CSI with the class labels randomly permuted: what sparsity alone gives", ACT,
             "CSI, shuffled labels", "model",
             lambda ev: metrics.csi(ev.act, ev.test.y[ev.act_index][torch.randperm(
                 len(ev.act_index), generator=generator(ev.run["seed"], "shuffled_labels")).to(ev.act.device)])),
    Variable("attr_core", "mean share of |attribution| on the core inputs (NaN where no regions are known)", ATTR,
             "core share of |attribution|", "model", lambda ev: ev.shares.get("core", math.nan)),
    Variable("attr_spurious", "mean share of |attribution| on the spurious inputs", ATTR,
             "spurious share of |attribution|", "model", lambda ev: ev.shares.get("spurious", math.nan)),
    Variable("attr_noise", "mean share of |attribution| on the noise inputs", ATTR, "noise share of |attribution|",
             "model", lambda ev: ev.shares.get("noise", math.nan)),
    Variable("attr_entropy", "mean entropy of the normalised |attribution| map over log(#positions), in [0, 1]",
             ATTR, "attribution entropy", "model",
             lambda ev: torch.nanmean(metrics.attribution_entropy(ev.attributions)).item()),
    Variable("bg_share", "mean share of |attribution| (summed over colour channels) on background pixels, by the "
             "masks of metrics.bg_mask (NaN without masks or for non-RGB inputs)", ATTR,
             "background share of |attribution|", "model", lambda ev: ev.background),
    Variable("max_bc_loss_ratio", "maximum over the recorded steps of sum(BC losses)/sum(losses)", STEPS,
             "max BC loss ratio", "training",
             lambda ev: float(np.nanmax(ev.result.records["bc_loss_ratio"].numpy(), initial=-np.inf))
             if len(ev.result.records["bc_loss_ratio"]) else math.nan),
    Variable("train_acc", "training accuracy at the last evaluation, fraction in [0, 1]", "the training set",
             "training accuracy", "training", lambda ev: ev.result.train_acc),
    Variable("steps", "SGD steps taken", "training", "steps", "training", lambda ev: ev.result.steps, dtype="int64"),
    Variable("converged", "reached 100% training accuracy before the step cap", "training", "converged", "training",
             lambda ev: ev.result.converged, dtype="bool"),
    Variable("diverged", "ended by a non-finite value, a dead network or a collapse to chance", "training", "diverged",
             "training", lambda ev: ev.result.diverged, dtype="bool"),
    Variable("reason", "why training stopped: converged, step cap, non-finite, dead network, collapse (or the run's "
             "status where it has no result)", "training", "reason", "training", lambda ev: ev.result.reason,
             dtype="U"),
    Variable("loss", "minibatch mean cross-entropy (NaN after the run stopped)", STEPS, "training loss", "training",
             _record("loss"), ("step",), "float32"),
    Variable("bc_loss_ratio", "sum(BC losses)/sum(losses) in the minibatch (0 without BC samples)", STEPS,
             "BC loss ratio", "training", _record("bc_loss_ratio"), ("step",), "float32"),
    Variable("bc_loss", "mean loss of the minibatch's bias-conflicting samples (NaN without any)", STEPS,
             "BC samples' loss", "training", _record("bc_loss"), ("step",), "float32"),
    Variable("ba_loss", "mean loss of the minibatch's bias-aligned samples", STEPS, "bias-aligned samples' loss",
             "training", _record("ba_loss"), ("step",), "float32"),
    Variable("confident_bc", "share of the minibatch's BC samples predicted wrong with probability above "
             "train.confident_prob (NaN without BC samples)", STEPS, "confidently mispredicted BC share", "training",
             _record("confident_bc"), ("step",), "float32"),
    Variable("logit_norm", "mean L2 norm of a sample's logits", STEPS, "logit norm", "training",
             _record("logit_norm"), ("step",), "float32"),
    Variable("param_norm", "L2 norm of all parameters after the step", STEPS, "parameter norm", "training",
             _record("param_norm"), ("step",), "float32"),
    Variable("neuron_csi", "per-neuron CSI of the penultimate layer at each of metrics.snapshot_steps (NaN where the "
             "run had stopped, or for a neuron that does not fire)", ACT, "neuron CSI", "training",
             lambda ev: ev.snapshots("csi"), ("snapshot", "neuron"), "float32"),
    Variable("neuron_bsi", "per-neuron BSI at each of metrics.snapshot_steps", ACT, "neuron BSI", "training",
             lambda ev: ev.snapshots("bsi"), ("snapshot", "neuron"), "float32"),
)
BY_NAME = {v.name: v for v in VARIABLES}
assert set(RECORDS) <= set(BY_NAME), "every training record is a declared variable"


def _nan_like(ev: Evaluation, var: Variable) -> np.ndarray:
    shape = [len(ev.cfg["prune_fractions"]) for d in var.dims if d == "prune_fraction"]
    return np.full(shape, np.nan, dtype=var.dtype)


def evaluate(run: dict, model: nn.Module, test_set: Split, result: TrainResult | None,
             names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The values of the declared variables ``names`` (default: all; only ``model`` ones when
    ``result`` is None) of one trained run, as numpy arrays; model variables are NaN for a model
    with non-finite weights."""
    ev = Evaluation(run, model, test_set, result)
    chosen = [BY_NAME[n] for n in names] if names else [v for v in VARIABLES if result or v.kind == "model"]
    out = {}
    for var in chosen:
        value = _nan_like(ev, var) if var.kind == "model" and not ev.finite else var.compute(ev)
        out[var.name] = np.asarray(value, dtype=var.dtype)
    return out


def definitions() -> str:
    """Every variable's description, as the JSON stored in a collected dataset's attrs."""
    return json.dumps({v.name: v.description for v in VARIABLES})
