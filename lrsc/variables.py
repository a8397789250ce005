"""What a run stores: every result variable, declared once with its meaning and its presentation.

A :class:`Variable` names a result, says what it means and what it is computed on, gives the
function that computes it (from an :class:`lrsc.evaluation.Evaluation` of the trained run),
its extra dims, its CF ``units`` and ``long_name``, and how readers see it: the display
scale and units (accuracies are stored as fractions and shown in %), a short table header,
the phrase a claim names it by, its true bounds (so a verdict can tell a variable stuck at its
ceiling from one that does not move) and its smallest effect of interest (the change a verdict
counts as an effect at all). The sweep computes every registered
variable of each run, the store writes its attributes into ``results.nc``, and the report,
the verdicts, the plots and the book read them from there. A new metric is one
:func:`register` call; see the README's "Extending lrsc".

Two kinds: ``model`` variables are computed from the trained model (and can be completed
later from a run's stored weights); ``training`` variables come from the training run itself
(its outcome, its per-step records, its snapshots).

This module imports no torch (the metrics load on first use), so ``lrsc collect`` reads
declarations without loading the training stack.
"""
from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from lrsc.registry import Registry



class _OnFirstUse:
    """Stands for module ``name``, imported when one of its attributes is first used (the
    metrics import torch, which declaring the variables does not need)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


metrics = _OnFirstUse("lrsc.metrics")
DIMENSIONLESS = "1"  # CF's units of a dimensionless quantity


def cf_units(units: str) -> dict[str, str]:
    """The CF ``units`` attribute of a quantity declared in ``units``: none for a dimensionless
    one (CF takes a variable without ``units`` as dimensionless), so that xarray labels its plot
    axes ``long_name``, not ``long_name [1]``; ``{"units": units}`` otherwise."""
    return {} if units == DIMENSIONLESS else {"units": units}


@dataclass(frozen=True)
class Variable:
    """One result of a run.

    name: its name in ``results.nc``; definition: what it means; on: what it is computed on;
    long_name: a short label (CF ``long_name``, plot axes); kind: ``model`` or ``training``;
    compute: the trained run's :class:`lrsc.evaluation.Evaluation` -> value (the catalogue does not
    import it: it sits below the code that computes it); dims: its dims beyond the grid's (``step``,
    ``prune_fraction``, ``snapshot``, ``neuron``); dtype: numpy dtype of its values; units:
    units of the stored values (``"1"``: dimensionless, stored without a CF ``units`` attribute,
    see :func:`cf_units`). Presentation: ``scale`` (display =
    stored x scale) with ``display_units``, ``header`` (a short table header), ``phrase`` (how
    a claim names it), ``bounds`` (the smallest and largest value it can take, stored units;
    None, or None at one end, where unbounded: prunability can exceed 1, see its definition),
    ``digits`` (decimals shown) and ``sesoi``, the smallest effect of interest in display units
    (e.g. 1 point of accuracy): an effect whose interval lies within it is no effect (see
    :mod:`lrsc.verdicts`); None where no verdict judges the variable.
    """

    name: str
    definition: str
    on: str
    long_name: str
    kind: str
    compute: Callable[[Any], Any]
    dims: tuple[str, ...] = ()
    dtype: str = "float64"
    units: str = "1"
    scale: float = 1.0
    display_units: str = ""
    header: str = ""
    phrase: str = ""
    bounds: tuple[float | None, float | None] | None = None
    digits: int = 3
    sesoi: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("model", "training"):
            raise ValueError(f"variable {self.name!r}: kind must be 'model' or 'training', got {self.kind!r}")

    @property
    def description(self) -> str:
        return f"{self.definition} (on: {self.on})"

    def attrs(self) -> dict[str, str]:
        """The netCDF attributes of the stored variable (CF ``long_name`` and ``units``, none where
        dimensionless: :func:`cf_units`; and lrsc's own)."""
        return {"long_name": self.long_name, **cf_units(self.units), "description": self.description,
                "kind": self.kind, "display_scale": self.scale, "display_units": self.display_units,
                "header": self.header or self.long_name, "phrase": self.phrase or self.long_name,
                "bounds": json.dumps(self.bounds), "digits": self.digits, "sesoi": json.dumps(self.sesoi)}


@dataclass(frozen=True)
class Presentation:
    """How a stored variable is shown and judged, read back from its attributes (:meth:`Variable.attrs`),
    so that tables, plots and verdicts need neither the code nor the registry entry that made it.

    scale: display = stored x scale; units: display units (``%``); effect_units: units of a
    difference of displayed values (``points`` for a quantity in %); bounds: ``(low, high)`` in
    stored units, either None where unbounded; sesoi: the smallest effect of interest in display
    units (None: not declared); digits: decimals shown; header: a short table header; phrase:
    how a claim names it.
    """

    scale: float = 1.0
    units: str = ""
    bounds: tuple[float | None, float | None] = (None, None)
    sesoi: float | None = None
    digits: int = 3
    header: str = ""
    phrase: str = ""

    @property
    def effect_units(self) -> str:
        return "points" if self.units == "%" else self.units

    @classmethod
    def of(cls, attrs: dict, name: str = "") -> "Presentation":
        """The presentation stored in a variable's ``attrs`` (a DataArray's ``.attrs``); defaults where absent."""
        bounds = json.loads(attrs["bounds"]) if attrs.get("bounds") else None
        sesoi = json.loads(attrs["sesoi"]) if isinstance(attrs.get("sesoi"), str) else attrs.get("sesoi")
        return cls(float(attrs.get("display_scale", 1.0)), attrs.get("display_units", ""),
                   tuple(bounds) if bounds else (None, None), None if sesoi is None else float(sesoi),
                   int(attrs.get("digits", 3)), attrs.get("header") or name, attrs.get("phrase") or name)


REGISTRY: Registry[Variable] = Registry("variable", origin=lambda v: v.compute)


def register(variable: Variable, *, replace: bool = False) -> Variable:
    """Register a result variable: every run of every later sweep computes and stores it.

    ``variable.compute`` gets an :class:`lrsc.evaluation.Evaluation` of the trained run (its
    model, unbiased test set, features, logits, ...; see that class) and returns a number (or
    an array of ``dims``). A name already registered raises ConfigError unless ``replace``.
    Runs stored before the variable existed are completed from their stored weights (model
    variables) when a sweep next reads them. A variable defined in a notebook or script
    travels to worker processes and cluster jobs with the sweep (see ``lrsc.extensions``).
    """
    return REGISTRY.add(variable.name, variable, replace=replace)


def declared() -> list[Variable]:
    """Every registered variable, in registration order."""
    return list(REGISTRY)


def get(name: str) -> Variable:
    return REGISTRY.get(name)


def _record(name: str) -> Callable[[Any], Any]:
    return lambda ev: ev.result.records[name].numpy()


TEST = "the unbiased test set (less its validation split where metrics.val_frac > 0)"
VAL = "the validation split: a random metrics.val_frac of the unbiased test set, held out from it"
RETRAINED = ("the unbiased test set less its validation split, after last-layer retraining (DFR) on a group-balanced "
             "subset of the validation split")
ACT = "penultimate activations of metrics.n_act random unbiased test inputs"
ATTR = "Integrated Gradients (zero baseline, metrics.ig_steps steps) of metrics.n_attr random unbiased test inputs"
STEPS = "the minibatch of every train.record_every-th training step"
# Smallest effects of interest (display units), our choices: a point of accuracy, two hundredths of a
# share in [0, 1] such as prunability or a share of attribution, one hundredth where a variable's whole
# range across a sweep is a few hundredths (class separation, attribution entropy).
ACCURACY = {"scale": 100.0, "display_units": "%", "bounds": (0.0, 1.0), "digits": 1, "sesoi": 1.0}
SHARE = {"bounds": (0.0, 1.0), "sesoi": 0.02}

for _v in (
    Variable("test_acc", "unbiased test accuracy, fraction in [0, 1]", TEST, "unbiased test accuracy", "model",
             lambda ev: metrics.accuracy(ev.outputs[1], ev.test.y), header="acc. (%)",
             phrase="unbiased test accuracy", **ACCURACY),
    Variable("worst_group_acc", "smallest accuracy over the groups (y, b)", TEST, "worst-group accuracy", "model",
             lambda ev: metrics.worst_group_accuracy(ev.outputs[1], ev.test.y, ev.test.group),
             header="worst group (%)", phrase="worst-group test accuracy", **ACCURACY),
    Variable("val_acc", "unbiased accuracy on the validation split (NaN without one): what selects a method's LR",
             VAL, "validation accuracy", "model", lambda ev: ev.on_val(lambda logits, v: metrics.accuracy(logits, v.y)),
             header="val. acc. (%)", phrase="validation accuracy", **ACCURACY),
    Variable("val_worst_group_acc", "worst-group accuracy on the validation split (NaN without one): what selects "
             "the LR of a method that may use group labels", VAL, "validation worst-group accuracy", "model",
             lambda ev: ev.on_val(lambda logits, v: metrics.worst_group_accuracy(logits, v.y, v.group)),
             header="val. worst group (%)", phrase="validation worst-group accuracy", **ACCURACY),
    Variable("dfr_acc", "unbiased test accuracy of the model's features with the head retrained by DFR (an "
             "L1-penalised logistic regression with C = metrics.dfr_c on standardised penultimate features; NaN "
             "without a validation split)", RETRAINED, "unbiased accuracy after DFR", "model",
             lambda ev: ev.on_retrained(lambda logits, t: metrics.accuracy(logits, t.y)), header="DFR acc. (%)",
             phrase="unbiased accuracy after last-layer retraining", **ACCURACY),
    Variable("dfr_worst_group_acc", "worst-group test accuracy with the head retrained by DFR (see dfr_acc)", RETRAINED,
             "worst-group accuracy after DFR", "model",
             lambda ev: ev.on_retrained(lambda logits, t: metrics.worst_group_accuracy(logits, t.y, t.group)),
             header="DFR worst group (%)", phrase="worst-group accuracy after last-layer retraining", **ACCURACY),
    Variable("dfr_gain", "dfr_acc - test_acc: the unbiased accuracy that retraining the head on the same features "
             "adds", RETRAINED, "accuracy gained by DFR", "model",
             lambda ev: ev.on_retrained(lambda logits, t: metrics.accuracy(logits, t.y))
             - metrics.accuracy(ev.outputs[1], ev.test.y), header="DFR gain (points)",
             phrase="the unbiased accuracy last-layer retraining adds", **{**ACCURACY, "bounds": (-1.0, 1.0)}),
    Variable("prunability", "mean over metrics.prune_fractions q of P_q = Acc(f_q)/Acc(f), f_q with a fraction q of "
             "the neurons or filters of smallest L1 weight norm zeroed (per layer, or over the whole network with "
             "metrics.prune_scope = global); above 1 where pruning raised the accuracy", TEST, "prunability", "model",
             lambda ev: ev.prune[0], header="prun.", phrase="prunability", bounds=(0.0, None), sesoi=0.02),
    Variable("prune_curve", "P_q = Acc(f_q)/Acc(f) at each pruning fraction q (see prunability)", TEST,
             "accuracy kept after pruning", "model", lambda ev: ev.prune[1], ("prune_fraction",),
             header="P_q", phrase="the accuracy kept after pruning"),
    Variable("act_comp", "mean q-compressibility 1 - ||h - h_(k)||/||h||, k = ceil(q d) with q = metrics.q", ACT,
             "activation compressibility", "model",
             lambda ev: metrics.nanmean(metrics.q_compressibility(ev.act, ev.cfg["q"])),
             header="act. comp.", phrase="activation compressibility", **SHARE),
    Variable("act_sparsity", "mean fraction of exactly-zero activations", ACT, "activation sparsity", "model",
             lambda ev: metrics.nanmean(metrics.sparsity(ev.act)), header="act. spars.",
             phrase="activation sparsity", **SHARE),
    Variable("act_pq_index", "mean PQ-index 1 - ||h||_1/(sqrt(d)||h||_2)", ACT, "activation PQ-index", "model",
             lambda ev: metrics.nanmean(metrics.pq_index(ev.act)), header="PQ-index", phrase="the activations' PQ-index",
             **SHARE),
    Variable("class_sep", "class separation R^2 (Kornblith et al. 2021, cosine distance)", ACT, "class separation R²",
             "model", lambda ev: metrics.class_separation(ev.act, ev.test.y[ev.act_index]), header="class sep.",
             phrase="class separation R²"),
    Variable("csi", "class-selectivity index, coverage-scaled, mean over the neurons that fire (NaN where the "
             "activations take negative values, e.g. a transformer's normalised tokens: the index is defined for "
             "non-negative activations)", ACT,
             "class selectivity (CSI)", "model", lambda ev: metrics.csi(ev.act, ev.test.y[ev.act_index]),
             header="CSI", phrase="class selectivity (CSI)", **SHARE),
    Variable("bsi", "bias-selectivity index: the CSI with bias labels in place of class labels", ACT,
             "bias selectivity (BSI)", "model", lambda ev: metrics.bsi(ev.act, ev.test.b[ev.act_index]),
             header="BSI", phrase="bias selectivity (BSI)", **SHARE),
    Variable("csi_shuffled", "the CSI with the class labels randomly permuted: what sparsity alone gives", ACT,
             "CSI, shuffled labels", "model", lambda ev: metrics.csi(ev.act, ev.shuffled_labels),
             header="CSI shuffled", phrase="the CSI with shuffled labels", **SHARE),
    Variable("attr_core", "mean share of |attribution| on the core inputs (NaN where no regions are known)", ATTR,
             "core share of |attribution|", "model", lambda ev: ev.shares.get("core", math.nan),
             header="core share", phrase="the share of attribution on the core inputs", **SHARE),
    Variable("attr_spurious", "mean share of |attribution| on the spurious inputs", ATTR,
             "spurious share of |attribution|", "model", lambda ev: ev.shares.get("spurious", math.nan),
             header="spurious share", phrase="the share of attribution on the spurious inputs", **SHARE),
    Variable("attr_noise", "mean share of |attribution| on the noise inputs", ATTR, "noise share of |attribution|",
             "model", lambda ev: ev.shares.get("noise", math.nan), header="noise share",
             phrase="the share of attribution on the noise inputs", **SHARE),
    Variable("attr_entropy", "mean entropy of the normalised |attribution| map over log(#positions), in [0, 1]",
             ATTR, "attribution entropy", "model",
             lambda ev: metrics.nanmean(metrics.attribution_entropy(ev.attributions)), header="attr. entropy",
             phrase="attribution entropy", bounds=(0.0, 1.0), sesoi=0.01),
    Variable("bg_share", "mean share of |attribution| (summed over colour channels) on background pixels, by the "
             "masks of metrics.bg_mask (NaN without masks or for non-RGB inputs)", ATTR,
             "background share of |attribution|", "model", lambda ev: ev.background, header="bg. share",
             phrase="the background's share of attribution", **SHARE),
    Variable("neuron_csi_final", "per-neuron CSI of the penultimate layer of the trained model (NaN for a neuron "
             "that does not fire)", ACT, "neuron CSI at the end", "model", lambda ev: ev.selectivity["csi"],
             ("neuron",), "float32"),
    Variable("neuron_bsi_final", "per-neuron BSI of the penultimate layer of the trained model", ACT,
             "neuron BSI at the end", "model", lambda ev: ev.selectivity["bsi"], ("neuron",), "float32"),
    Variable("max_bc_loss_ratio", "maximum over the recorded steps of sum(BC losses)/sum(losses)", STEPS,
             "max BC loss ratio", "training", lambda ev: ev.max_record("bc_loss_ratio"), header="max BC ratio",
             phrase="the largest BC loss ratio", **SHARE),
    Variable("chance_acc", "accuracy of a constant guess on the class-balanced unbiased test set, 1 / classes",
             TEST, "chance accuracy", "model", lambda ev: 1.0 / ev.test.num_classes, header="chance (%)",
             phrase="chance accuracy", scale=100.0, display_units="%", bounds=(0.0, 1.0), digits=1),
    Variable("train_acc", "training accuracy at the last evaluation, fraction in [0, 1]", "the training set",
             "training accuracy", "training", lambda ev: ev.result.train_acc, header="train acc. (%)",
             phrase="training accuracy", **ACCURACY),
    Variable("steps", "SGD steps taken", "training", "steps", "training", lambda ev: ev.result.steps, dtype="int64",
             header="steps", digits=0),
    Variable("converged", "met the stopping criterion (100% training accuracy, or train.stop_loss) before the step "
             "cap", "training", "converged", "training", lambda ev: ev.result.converged, dtype="bool"),
    Variable("diverged", "ended by a non-finite value, a dead network or a collapse to chance", "training", "diverged",
             "training", lambda ev: ev.result.diverged, dtype="bool"),
    Variable("reason", "why training stopped: converged, step cap, non-finite, dead network, collapse (or the run's "
             "status where it has no result)", "training", "reason", "training", lambda ev: ev.result.reason,
             dtype="U"),
    Variable("loss", "minibatch mean cross-entropy (NaN after the run stopped)", STEPS, "training loss", "training",
             _record("loss"), ("step",), "float32"),
    Variable("bc_loss_ratio", "sum(BC losses)/sum(losses) in the minibatch (0 without BC samples)", STEPS,
             "BC loss ratio", "training", _record("bc_loss_ratio"), ("step",), "float32", **SHARE),
    Variable("bc_loss", "mean loss of the minibatch's bias-conflicting samples (NaN without any)", STEPS,
             "BC samples' loss", "training", _record("bc_loss"), ("step",), "float32"),
    Variable("ba_loss", "mean loss of the minibatch's bias-aligned samples", STEPS, "bias-aligned samples' loss",
             "training", _record("ba_loss"), ("step",), "float32"),
    Variable("confident_bc", "share of the minibatch's BC samples predicted wrong with probability above "
             "train.confident_prob (NaN without BC samples)", STEPS, "confidently mispredicted BC share", "training",
             _record("confident_bc"), ("step",), "float32", phrase="the share of confidently mispredicted BC samples",
             **SHARE),
    Variable("logit_norm", "mean L2 norm of a sample's logits", STEPS, "logit norm", "training",
             _record("logit_norm"), ("step",), "float32", phrase="the logit norm", bounds=(0.0, None), sesoi=0.1),
    Variable("param_norm", "L2 norm of all parameters after the step (accumulated in float64)", STEPS,
             "parameter norm", "training", _record("param_norm"), ("step",), "float32", phrase="the parameter norm",
             bounds=(0.0, None), sesoi=0.1),
    Variable("neuron_csi", "per-neuron CSI of the penultimate layer at each of metrics.snapshot_steps (NaN where the "
             "run had stopped, or for a neuron that does not fire)", ACT, "neuron CSI", "training",
             lambda ev: ev.snapshots("csi"), ("snapshot", "neuron"), "float32"),
    Variable("neuron_bsi", "per-neuron BSI at each of metrics.snapshot_steps", ACT, "neuron BSI", "training",
             lambda ev: ev.snapshots("bsi"), ("snapshot", "neuron"), "float32"),
):
    register(_v)
del _v


def definitions() -> str:
    """Every variable's description, as the JSON stored in a collected dataset's attrs."""
    return json.dumps({v.name: v.description for v in declared()})
