"""Training and metric settings, each declared once.

Every setting is one field of :class:`TrainSettings` (the ``train`` section of a sweep file)
or :class:`MetricSettings` (``metrics``), declared with :func:`setting`: its default (whose
type is the setting's type), its valid values, a label for plots and tables, and, for
training settings, whether each model of a batched stack may have its own value
(``per_model``), whether the batched kernel implements values other than the default
(``stacked``) and in which direction it acts like a larger learning rate (``like_lr``).
Validation, the CLI's axis names, the training functions, plot labels and the
hyperparameter chapter all read these declarations; adding a setting is one field here
plus its use in the training step.

Building a settings object checks and normalises it: ``TrainSettings.from_config({"lr": 1})``
holds ``lr == 1.0`` (a value takes the type of its default, so ``1`` and ``1.0`` are one
setting), and a value of the wrong type, out of range, not finite, or an unknown key raises
:class:`~lrsc.errors.ConfigError` naming the key and what is valid. This module imports no
torch, so reading a sweep's settings stays light.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

from lrsc.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A range check: ``ok(value)``, and the words that say which values pass (for errors)."""

    ok: Callable[[Any], bool]
    says: str


POSITIVE = Rule(lambda v: v > 0, "positive")
NON_NEGATIVE = Rule(lambda v: v >= 0, "non-negative")
FRACTION = Rule(lambda v: 0 < v <= 1, "in (0, 1]")
BELOW_ONE = Rule(lambda v: 0 <= v < 1, "in [0, 1)")


@dataclass(frozen=True)
class Setting:
    """One declared setting (see :func:`setting`); ``section`` is ``train`` or ``metrics``."""

    section: str
    key: str
    default: Any
    label: str
    rule: Rule | None
    choices: tuple[str, ...]
    item: type | None
    per_model: bool
    stacked: bool
    like_lr: int
    name: str
    doc: str

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"


def setting(default: Any, label: str, rule: Rule | None = None, *, choices: Sequence[str] = (),
            item: type | None = None, per_model: bool = False, stacked: bool = True, like_lr: int = 0,
            name: str = "", doc: str = "") -> Any:
    """Declare a setting as a dataclass field.

    default: its value when not given; its type is the setting's type (a tuple for a list of
    ``item``). label: the axis label of plots. rule / choices: the valid values. per_model:
    training only; each model of a ``train_batched`` stack may have its own value.
    stacked: training only; False when the batched kernel (``lrsc.stacked``) implements only
    the default value, so that a run setting it otherwise trains in the one-model loop.
    like_lr: +1 when larger values act like a larger LR (noisier or more regularised
    training), -1 when smaller ones do (the batch size), 0 when no direction is claimed.
    name: how prose and tables name it (default: the label). doc: one line for readers.
    """
    meta = {"label": label, "rule": rule, "choices": tuple(choices), "item": item, "per_model": per_model,
            "stacked": stacked, "like_lr": like_lr, "name": name or label, "doc": doc}
    return field(default=default, metadata=meta)


def _type_name(default: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            tuple: "a list"}.get(type(default), type(default).__name__)


def coerce(key: str, value: Any, default: Any, item: type | None = None) -> Any:
    """``value`` in the type of ``default`` (ints and numeric strings become floats, integral
    floats ints, lists tuples); raises ConfigError for a value of another type or a number
    that is not finite."""
    kind = type(default)
    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r} ({type(value).__name__})")
        return tuple(coerce(f"{key}[{i}]", v, item()) for i, v in enumerate(value)) if item else tuple(value)
    if isinstance(value, bool) != (kind is bool):
        raise ConfigError(f"{key} must be {_type_name(default)}, got {value!r} ({type(value).__name__})")
    if kind is float and isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r} (str)") from None
    if kind in (int, float):
        if not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be {_type_name(default)}, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        if kind is int and not float(value).is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return kind(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r} ({type(value).__name__})")
    return value


class _Section:
    """What :class:`TrainSettings` and :class:`MetricSettings` share: building from a config
    mapping with checks, and back."""

    SECTION = ""

    @classmethod
    def declared(cls) -> dict[str, Setting]:
        """Every setting of the section, by key, in declaration order."""
        return {f.name: Setting(cls.SECTION, f.name, f.default, **f.metadata) for f in fields(cls)}

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None):
        """Check and normalise ``values`` (missing keys take their defaults)."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{cls.SECTION} must be a mapping of settings, got {values!r}")
        declared = cls.declared()
        unknown = [k for k in values if k not in declared]
        if unknown:
            raise ConfigError(f"unknown key {cls.SECTION}.{unknown[0]}; valid keys: {', '.join(declared)}")
        given = {}
        for key, value in values.items():
            s = declared[key]
            value = coerce(s.path, value, s.default, s.item)
            if s.choices and value not in s.choices:
                raise ConfigError(f"{s.path} must be one of {', '.join(s.choices)}, got {value!r}")
            if s.rule and not s.rule.ok(value):
                raise ConfigError(f"{s.path} must be {s.rule.says}, got {value!r}")
            given[key] = value
        return cls(**given)

    def to_config(self) -> dict[str, Any]:
        """The settings as plain config values (lists for tuples)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class TrainSettings(_Section):
    """How a model is trained: optimiser, LR schedule, penalties, stopping and records."""

    SECTION = "train"

    lr: float = setting(0.1, "learning rate", POSITIVE, per_model=True, like_lr=1,
                        doc="the learning rate (a schedule's starting or peak value)")
    batch_size: int = setting(100, "batch size", POSITIVE, like_lr=-1, doc="samples per SGD step")
    optimizer: str = setting("sgd", "optimizer", choices=("sgd", "adam", "adamw", "psgd_kron"), stacked=False,
                             doc="sgd, adam, adamw or psgd_kron (PSGD with Kronecker-factored preconditioners)")
    momentum: float = setting(0.0, "momentum", BELOW_ONE, per_model=True, like_lr=1, doc="SGD's momentum")
    weight_decay: float = setting(0.0, "L2 penalty (weight decay)", NON_NEGATIVE, per_model=True, like_lr=1,
                                  name="L2", doc="L2 penalty (decoupled for adamw and psgd_kron)")
    l1: float = setting(0.0, "L1 penalty", NON_NEGATIVE, per_model=True, like_lr=1, name="L1",
                        doc="an L1 penalty l1 * sum |w| over every weight")
    focal_gamma: float = setting(0.0, "focal loss γ", NON_NEGATIVE, per_model=True, like_lr=1, name="focal loss",
                                 doc="the focal loss (1 - p)^gamma * CE; 0 is the cross-entropy")
    asam_rho: float = setting(0.0, "ASAM ρ", NON_NEGATIVE, stacked=False, like_lr=1, name="ASAM",
                              doc="ASAM's neighbourhood radius; 0 trains without ASAM")
    method: str = setting("erm", "training method", choices=("erm", "jtt", "lff", "group_dro"), stacked=False,
                          doc="erm (the plain objective); jtt, Just Train Twice (Liu et al. 2021); lff, Learning from "
                              "Failure (Nam et al. 2020); group_dro, GroupDRO (Sagawa et al. 2020), which sees the "
                              "training set's bias labels")
    jtt_steps: int = setting(1000, "JTT identification steps", POSITIVE, stacked=False,
                             doc="jtt: step cap of the ERM identification run whose training errors are upweighted "
                                 "(scaled by cap_lr as max_steps is; it stops earlier once it fits the training set)")
    jtt_up: float = setting(20.0, "JTT upweight λ_up", POSITIVE, stacked=False,
                            doc="jtt: the weight of the identification run's training errors, against 1 for the rest")
    lff_q: float = setting(0.7, "LfF GCE q", FRACTION, stacked=False,
                           doc="lff: q of the generalized cross-entropy (1 - p_y^q) / q the biased model trains on")
    dro_eta: float = setting(0.01, "GroupDRO step size η", POSITIVE, stacked=False,
                             doc="group_dro: step size of the exponentiated-gradient update of the group weights")
    schedule: str = setting("constant", "LR schedule", choices=("constant", "step", "cosine", "wsd"),
                            per_model=True, doc="constant, step, cosine or wsd (warmup-stable-decay)")
    schedule_steps: int = setting(0, "schedule length", NON_NEGATIVE, per_model=True,
                                  doc="cosine and wsd: steps over which the schedule runs (0: max_steps)")
    schedule_factor: float = setting(0.1, "LR factor", NON_NEGATIVE, per_model=True,
                                     doc="LR multiplier after the step (step) or at the schedule's end (cosine, wsd)")
    schedule_at: int = setting(1000, "step t of the LR switch", POSITIVE, per_model=True,
                               doc="step: the step after which the LR is multiplied by schedule_factor")
    warmup_steps: int = setting(0, "warmup steps", NON_NEGATIVE, per_model=True, doc="wsd: steps of linear warmup")
    decay_frac: float = setting(0.2, "decay share", FRACTION, per_model=True,
                                doc="wsd: the share of schedule_steps spent decaying")
    stop_loss: float = setting(0.0, "stopping cross-entropy", NON_NEGATIVE, per_model=True,
                               doc="stop at this mean training cross-entropy instead of 100% accuracy (0: accuracy)")
    extra_steps: int = setting(0, "extra steps", NON_NEGATIVE, per_model=True,
                               doc="steps trained on after the stopping criterion is met")
    max_steps: int = setting(15000, "step cap", POSITIVE, per_model=True,
                             doc="step cap; a run that hits it is reported as not converged")
    cap_lr: float = setting(0.0, "LR of the step cap", NON_NEGATIVE, per_model=True,
                            doc="the LR at which max_steps applies: a smaller LR gets proportionally more steps, "
                                "max_steps x cap_lr / lr, since it takes that many more to fit (0: max_steps at "
                                "every LR)")
    eval_every: int = setting(100, "evaluation interval", POSITIVE,
                              doc="steps between full training-set accuracy checks")
    collapse_patience: int = setting(10, "collapse patience", POSITIVE,
                                     doc="evaluations at chance (after having learnt) that count as a collapse")
    record_every: int = setting(10, "record interval", POSITIVE,
                                doc="steps between the training records (loss, BC loss ratio, norms, ...)")
    precision: str = setting("fp32", "precision", choices=("fp32", "bf16", "fp16"), stacked=False,
                             doc="the training steps' arithmetic: fp32, or mixed precision with bf16 or fp16 (CUDA "
                                 "only, with a gradient scaler) autocasting; evaluation is always fp32")
    confident_prob: float = setting(0.9, "confidence threshold τ", FRACTION,
                                    doc="a sample is confidently mispredicted when a wrong class gets more than this")

    def __post_init__(self) -> None:
        if self.optimizer != "sgd" and self.momentum:
            raise ConfigError(f"train.momentum is SGD's; train.optimizer={self.optimizer!r} uses its own "
                              f"(set train.momentum to 0)")
        if self.precision == "fp16" and self.asam_rho:
            raise ConfigError("train.precision=fp16 does not combine with ASAM (train.asam_rho > 0): its gradient "
                              "scaler cannot scale ASAM's two gradient passes; use train.precision=bf16")
        self._check_method()
        horizon = self.schedule_steps or self.step_cap
        if self.schedule == "wsd" and self.warmup_steps + self.decay_frac * horizon > horizon:
            raise ConfigError(f"train.warmup_steps={self.warmup_steps} and train.decay_frac={self.decay_frac} do not "
                              f"fit in the schedule's {horizon} steps (train.schedule_steps, else train.max_steps)")

    def _check_method(self) -> None:
        """A method's parameters are set only with that method (otherwise two hashes would name one
        run), and a robust-training method replaces the objective's weights, which the focal loss and
        ASAM's second gradient pass also set."""
        declared = self.declared()
        for key, method in METHOD_PARAMS.items():
            if getattr(self, key) != declared[key].default and self.method != method:
                raise ConfigError(f"train.{key} is {method}'s; train.method={self.method!r} does not use it (leave "
                                  f"train.{key} at {declared[key].default!r}, or set train.method={method})")
        if self.method != "erm" and (self.focal_gamma or self.asam_rho):
            raise ConfigError(f"train.method={self.method} sets the objective's per-sample weights itself; it does "
                              f"not combine with the focal loss or ASAM (set train.focal_gamma and train.asam_rho to 0)")

    def loop_only(self) -> tuple[str, ...]:
        """The settings declared ``stacked=False`` that are set off their default here: each makes
        a run train in the one-model loop (``lrsc.train``), which the batched kernel cannot replace."""
        return tuple(k for k, s in self.declared().items() if not s.stacked and getattr(self, k) != s.default)

    @property
    def step_cap(self) -> int:
        """The run's step cap: ``max_steps``, times ``cap_lr / lr`` for an LR below ``cap_lr``."""
        if not self.cap_lr or self.lr >= self.cap_lr:
            return self.max_steps
        return math.ceil(round(self.max_steps * self.cap_lr / self.lr, 6))

    @property
    def plain_sgd(self) -> bool:
        """SGD without momentum, weight decay or L1: the batched kernel's in-place update."""
        return self.optimizer == "sgd" and not (self.momentum or self.weight_decay or self.l1)

    def shared(self) -> dict[str, Any]:
        """The settings every model of a batched stack must share (all but the per-model ones)."""
        per_model = {k for k, s in self.declared().items() if s.per_model}
        return {k: v for k, v in self.to_config().items() if k not in per_model}


@dataclass(frozen=True)
class MetricSettings(_Section):
    """How a trained model is measured."""

    SECTION = "metrics"

    q: float = setting(0.1, "q of q-compressibility", FRACTION, doc="fraction kept by q-compressibility")
    n_act: int = setting(1000, "activation inputs", POSITIVE, doc="random test inputs for activation statistics")
    prune_fractions: tuple = setting((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), "pruning fractions", item=float,
                                     doc="the fractions q over which prunability averages P_q")
    n_attr: int = setting(500, "attribution inputs", NON_NEGATIVE,
                         doc="test inputs for Integrated Gradients (0: none; the attribution variables are NaN)")
    ig_steps: int = setting(32, "IG steps", POSITIVE, doc="Riemann steps of Integrated Gradients")
    val_frac: float = setting(0.0, "validation share", BELOW_ONE,
                              doc="share of the unbiased test set held out as a validation split (model selection, "
                                  "last-layer retraining); every test-set variable is then computed on the rest "
                                  "(0: no validation split)")
    dfr_c: float = setting(1.0, "DFR's C", POSITIVE,
                           doc="last-layer retraining (DFR): inverse strength C of its L1-penalised logistic "
                               "regression, as scikit-learn's (minimising ||W||_1 + C * sum of cross-entropies)")
    prune_scope: str = setting("layer", "pruning scope", choices=("layer", "global"),
                               doc="structured pruning per layer, or ranked over the whole network")
    snapshot_steps: tuple = setting((), "snapshot steps", item=int,
                                    doc="training steps at which per-neuron CSI and BSI are recorded")
    bg_mask: str = setting("none", "background masks", choices=("none", "grabcut", "deeplab"),
                           doc="background masks for bg_share: none, grabcut (OpenCV, central box) or deeplab")
    deeplab_weights: str = setting("", "DeepLabV3 weights",
                                   doc="bg_mask deeplab: a local file with torchvision's deeplabv3_resnet50 state dict")

    def __post_init__(self) -> None:
        if not self.prune_fractions or not all(0 <= f < 1 for f in self.prune_fractions):
            raise ConfigError(f"metrics.prune_fractions must be a non-empty list of numbers in [0, 1), "
                              f"got {list(self.prune_fractions)!r}")
        snaps = list(self.snapshot_steps)
        if any(s < 0 for s in snaps) or sorted(set(snaps)) != snaps:
            raise ConfigError(f"metrics.snapshot_steps must be increasing non-negative integers (training steps), "
                              f"got {snaps!r}")
        if self.bg_mask == "deeplab":
            from pathlib import Path

            if not Path(self.deeplab_weights).expanduser().is_file():
                raise ConfigError(f"metrics.bg_mask=deeplab needs torchvision's deeplabv3_resnet50 weights in a local "
                                  f"file: metrics.deeplab_weights={self.deeplab_weights!r} is not one; set it, or use "
                                  f"metrics.bg_mask=grabcut")


# Each robust-training method's own parameters: {setting: the train.method that uses it}.
METHOD_PARAMS = {"jtt_steps": "jtt", "jtt_up": "jtt", "lff_q": "lff", "dro_eta": "group_dro"}
TRAIN = TrainSettings.declared()
METRICS = MetricSettings.declared()
PER_MODEL = tuple(k for k, s in TRAIN.items() if s.per_model)


def label(key: str) -> str:
    """The plot label of a training setting or metric setting ``key`` (the key itself if unknown)."""
    s = TRAIN.get(key) or METRICS.get(key)
    return s.label if s else key
