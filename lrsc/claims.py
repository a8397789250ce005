"""The paper's claims that the book tests, and a ledger of how this build's stored sweeps judge them.

Each :class:`Claim` names the paper's figure, the statement, the book chapter that shows it,
the sweep folder(s) under a ``results_dir`` it reads, and a variable with its expected
direction. :func:`ledger` reads the stored ``results.nc`` files and gives one verdict per claim:

- **direction with LR** (``kind="trend"``): the book's robust LR effect,
  :func:`lrsc.report.trend` — the rank correlation of the seed mean with LR over the compared
  LRs, and the upper-half minus lower-half effect with its seed spread — judged by
  :meth:`lrsc.report.Trend.verdict`: ``agrees`` / ``disagrees`` when the effect clearly goes
  the expected / the other way, ``inconclusive`` when it is within the seed spread (or the rank
  correlation has the other sign, or fewer than two LRs are compared);
- **correlation over runs** (``kind="correlation"``, Fig. 12): the Spearman correlation of
  ``x`` and the variable over every converged, not diverged run of the claim's sweeps, each
  sweep's values centred first (:func:`lrsc.mechanism.correlations`, the same pooled
  correlation as the mechanism chapter). The rule: ``inconclusive`` with fewer than
  :data:`MIN_RUNS` runs or ``|rho|`` below :data:`MIN_RHO`; otherwise ``agrees`` when ``rho``
  has the expected sign and ``disagrees`` when not.

- **both properties** (``kind="both"``, Fig. 6 and Tab. 2): over the range of one
  hyperparameter (``axis``), :func:`lrsc.hyper.effects_table` judges whether unbiased accuracy
  and prunability both clearly improve. For the LR (``expected=1``) the claim ``agrees`` when
  both do, ``disagrees`` when either clearly worsens, and is ``inconclusive`` otherwise; for
  any other hyperparameter (``expected=-1``: "at most one") it ``disagrees`` when both
  clearly improve and ``agrees`` otherwise.

A claim whose folders are all missing is ``not run in this profile``; a correlation claim
uses the folders that exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lrsc import mechanism, report, store

NOT_RUN = "not run in this profile"
VERDICTS = ("agrees", "disagrees", "inconclusive", NOT_RUN)
MIN_RUNS = 6  # a correlation over fewer runs is inconclusive
MIN_RHO = 0.2  # nor is one smaller than this in size

# Accuracies are judged in percentage points.
SCALE = {"test_acc": 100.0, "worst_group_acc": 100.0}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, as the book tests it (see the module docstring)."""

    id: str
    figure: str  # the paper's figure or table
    statement: str  # in one sentence
    chapter: str  # the book page that shows it, a {doc} path relative to book/
    folders: tuple[str, ...]  # sweep folders under results_dir
    variable: str
    expected: int = 1  # +1: rises (with LR, or with x); -1: falls
    kind: str = "trend"  # "trend": direction with LR; "correlation": with x over runs
    x: str = "lr"  # the other variable of a correlation claim
    axis: str = "lr"  # the swept setting of a "both" claim


# (sweep folder, a name for readers) of the Fig. 4 chapter; a profile may run only some.
FIG4_SWEEPS = (
    ("fig4_colored_mnist_fcn", "Colored MNIST, FCN"),
    ("fig4_colored_mnist_cnn", "Colored MNIST, CNN"),
    ("fig4_double_mnist_fcn", "Double MNIST, FCN"),
    ("fig4_double_mnist_cnn", "Double MNIST, CNN"),
    ("fig4_mnist_cifar_fcn", "MNIST-CIFAR, FCN"),
    ("fig4_corrupted_cifar10_fcn", "Corrupted CIFAR-10, FCN"),
)
SWEEPS = (("parity", "parity, FCN"), ("moon_star", "moon-star, FCN"), *FIG4_SWEEPS)
# (sweep folder, a name for readers) of the supplement's training schemes, each an LR sweep.
SCHEME_SWEEPS = (
    ("scheme_adam", "Adam"),
    ("scheme_adamw_cosine", "AdamW with a cosine schedule"),
    ("scheme_psgd_kron_wsd", "PSGD-Kron with a WSD schedule"),
    ("scheme_step_decay", "SGD with a step decay"),
    ("scheme_stop_loss", "SGD to a cross-entropy threshold"),
    ("scheme_extra_steps", "SGD trained on past 100% accuracy"),
)
# (sweep folder, a name for readers) of the Fig. 7 and Fig. 8/10/11 chapters, quick and full profiles.
NATURALISTIC_SWEEPS = (("fig7_moon_star_vit", "moon-star, reduced ViT + AdamW"),
                       ("fig7_mnist_cifar_vit", "MNIST-CIFAR, reduced ViT + AdamW"),
                       ("fig7_celeba_swin_t", "CelebA, Swin-T + AdamW"), ("fig7_waterbirds_swin_t", "Waterbirds, Swin-T + AdamW"))
STANDARD_SWEEPS = (("fig8_cifar10_cnn", "CIFAR-10, CNN"), ("fig8_cifar10_resnet18", "CIFAR-10, ResNet18"),
                   ("fig8_cifar100_resnet18", "CIFAR-100, ResNet18"), ("fig8_imagenet_resnet18", "ImageNet, ResNet18"))
# The hyperparameters of the Fig. 6 chapter (folders hp_<key>) besides the LR.
HYPERPARAMETERS = ("batch_size", "momentum", "l1", "weight_decay", "focal_gamma", "asam_rho")

# (variable, expected direction with LR, how the statement names it)
_WORDS = {
    "test_acc": "unbiased test accuracy rises",
    "prunability": "prunability rises",
    "act_comp": "activation compressibility rises",
    "attr_core": "the share of attribution on the core bits rises",
    "attr_spurious": "the share of attribution on the spurious bit falls",
    "csi": "class selectivity (CSI) rises",
    "class_sep": "class separation R² rises",
    "worst_group_acc": "worst-group test accuracy rises",
    "attr_entropy": "attribution entropy falls",
    "bg_share": "the background's share of attribution falls",
}
# (id prefix, paper figure, chapter, sweeps, variables with expected direction)
_TREND_TABLE = (
    ("fig3", "Fig. 3", "fig3_parity", SWEEPS[:1],
     (("test_acc", 1), ("prunability", 1), ("act_comp", 1), ("attr_core", 1), ("attr_spurious", -1))),
    ("fig15", "Fig. 15", "fig3_parity", SWEEPS[1:2], (("test_acc", 1), ("prunability", 1))),
    ("fig4", "Fig. 4", "fig4_datasets", FIG4_SWEEPS, (("test_acc", 1), ("prunability", 1), ("act_comp", 1))),
    ("fig5", "Fig. 5", "fig5_representations", (SWEEPS[0], *FIG4_SWEEPS), (("csi", 1), ("class_sep", 1))),
    ("fig7", "Fig. 7", "fig7_naturalistic", NATURALISTIC_SWEEPS,
     (("worst_group_acc", 1), ("prunability", 1), ("csi", 1))),
    ("fig8", "Fig. 10, 11", "fig8_10_11_standard", STANDARD_SWEEPS,
     (("test_acc", 1), ("attr_entropy", -1), ("bg_share", -1))),
    ("supp", "Fig. 23-25, 29", "supplement_schemes", SCHEME_SWEEPS, (("test_acc", 1), ("prunability", 1))),
)


def _claims() -> tuple[Claim, ...]:
    out = [Claim(f"{prefix}.{folder}.{var}", figure, f"{name}: {_WORDS[var]} with LR.", chapter, (folder,), var, sign)
           for prefix, figure, chapter, sweeps, variables in _TREND_TABLE
           for folder, name in sweeps for var, sign in variables]
    out.append(Claim("fig12.max_bc_loss_ratio", "Fig. 12",
                     "Over converged runs, a larger peak share of the loss on bias-conflicting samples "
                     "goes with higher unbiased test accuracy.",
                     "fig12_13_mechanism", tuple(folder for folder, _ in SWEEPS), "test_acc", 1,
                     kind="correlation", x="max_bc_loss_ratio"))
    from lrsc.hyper import NAMES

    out.append(Claim("fig6.lr.both", "Fig. 6, Tab. 2", "Over its range, the learning rate raises both unbiased "
                     "accuracy and prunability.", "fig6_hyperparameters", ("hp_parity", "hp_colored_mnist_resnet18"), "test_acc", 1,
                     kind="both"))
    out += [Claim(f"fig6.{key}.both", "Fig. 6, Tab. 2", f"Over its range at a small LR, {NAMES[key]} raises at most "
                  f"one of unbiased accuracy and prunability.", "fig6_hyperparameters", (f"hp_{key}",), "test_acc", -1,
                  kind="both", axis=key) for key in HYPERPARAMETERS]
    return tuple(out)


CLAIMS = _claims()


def correlation_verdict(rho: float, runs: int, expected: int = 1) -> str:
    """The rule for a correlation claim: ``inconclusive`` with fewer than :data:`MIN_RUNS` runs,
    a NaN ``rho`` or ``|rho| < MIN_RHO``; else ``agrees`` if ``rho`` has the sign of
    ``expected``, ``disagrees`` if not."""
    if runs < MIN_RUNS or not np.isfinite(rho) or abs(rho) < MIN_RHO:
        return "inconclusive"
    return "agrees" if np.sign(rho) == np.sign(expected) else "disagrees"


def _load(results_dir: Path, folder: str):
    path = results_dir / folder / "results.nc"
    return store.load(path) if path.is_file() else None


def judge(claim: Claim, results_dir: str | Path) -> dict:
    """The ledger row of one claim (see :func:`ledger`)."""
    results_dir = Path(results_dir)
    nan = float("nan")
    row = {"id": claim.id, "figure": claim.figure, "statement": claim.statement, "chapter": claim.chapter,
           "sweeps": ", ".join(claim.folders), "variable": claim.variable, "expected": claim.expected,
           "kind": claim.kind, "verdict": NOT_RUN, "effect": nan, "rank": nan, "seed sd": nan,
           "LRs": 0, "seeds": 0, "runs": 0}
    loaded = {f: ds for f in claim.folders if (ds := _load(results_dir, f)) is not None}
    if not loaded:
        return row
    if claim.kind == "trend":
        ds = loaded[claim.folders[0]]
        t = report.trend(ds, claim.variable, SCALE.get(claim.variable, 1.0))
        row.update(verdict=t.verdict(claim.expected), effect=t.effect, rank=t.rank, **{"seed sd": t.spread},
                   LRs=t.n_lrs, seeds=t.n_seeds, runs=t.n_lrs * t.n_seeds)
    elif claim.kind == "correlation":
        runs = mechanism.runs_table(loaded, x=claim.x, y=claim.variable)
        pooled = mechanism.correlations(runs, x=claim.x, y=claim.variable).iloc[-1]
        rho, n = float(pooled["spearman"]), int(pooled["runs"])
        row.update(verdict=correlation_verdict(rho, n, claim.expected), effect=rho, rank=rho, runs=n,
                   LRs=int(runs.lr.nunique()), seeds=int(runs.seed.nunique()), sweeps=", ".join(loaded))
    elif claim.kind == "both":
        from lrsc.hyper import effects_table

        ds = next(iter(loaded.values()))  # the quick or the full profile's sweep
        ds = ds.isel(lr=0) if claim.axis != "lr" else ds
        effects = effects_table({claim.axis: ds}, ("test_acc", "prunability")).iloc[0]
        directions = {effects[("test_acc", "direction")], effects[("prunability", "direction")]}
        both = directions == {"improves"}
        verdict = ("agrees" if both else "disagrees" if "worsens" in directions else "inconclusive") \
            if claim.expected > 0 else ("disagrees" if both else "agrees")
        t = report.trend(ds, "test_acc", 100, axis=claim.axis)
        row.update(verdict=verdict, effect=effects[("test_acc", "effect")], rank=t.rank,
                   **{"seed sd": effects[("test_acc", "seed sd")]}, LRs=t.n_lrs, seeds=t.n_seeds,
                   runs=t.n_lrs * t.n_seeds)
    else:
        raise ValueError(f"unknown claim kind {claim.kind!r}")
    return row


def ledger(results_dir: str | Path, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """One row per claim, indexed by its id: ``figure``, ``statement``, ``chapter``, ``sweeps``
    (the folders read), ``variable``, ``expected`` (+1 / -1), ``kind``, ``verdict`` (one of
    :data:`VERDICTS`), and the numbers behind it.

    For a trend claim: ``effect`` (the upper-half minus lower-half LR effect of
    :func:`lrsc.report.trend`, accuracies in percentage points), ``rank`` (its rank correlation
    with LR), ``seed sd`` (the effect's seed spread), ``LRs`` and ``seeds`` compared, ``runs``
    their product. For a correlation claim: ``effect`` and ``rank`` are the pooled Spearman
    correlation, ``runs`` the converged runs it is taken over, ``LRs`` / ``seeds`` the distinct
    values among them, ``sweeps`` the folders found. NaN / 0 where not run.
    """
    return pd.DataFrame([judge(c, results_dir) for c in claims]).set_index("id")


def settings_gains(results_dir: str | Path, folders: tuple[str, ...] = ("parity_settings", "fig4_settings"),
                   metrics: tuple[str, ...] = ("test_acc", "prunability")) -> dict[str, pd.DataFrame]:
    """:func:`lrsc.report.gain_table` of each settings sweep stored under ``results_dir``
    (``{folder: table}``; missing folders and sweeps with fewer than two LRs are left out),
    accuracy columns in percentage points."""
    out = {}
    for folder in folders:
        ds = _load(Path(results_dir), folder)
        if ds is None or ds.sizes["lr"] < 2:
            continue
        table = report.gain_table(ds, metrics)
        for col in table.columns:
            if col.split(" ")[0] in SCALE and table[col].dtype.kind == "f":
                table[col] = table[col] * SCALE[col.split(" ")[0]]
        out[folder] = table
    return out
