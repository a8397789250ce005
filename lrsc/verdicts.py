"""The book's one verdict rule: what a set of runs says about a claim of the paper, and how sure it is.

Runs of one seed share their initialisation, data order and (for synthetic data) their
dataset, so every comparison is made *within* seeds: each seed gives one paired effect (for
a trend with LR: the mean over the upper half of the compared LRs minus the mean over the
lower half), and the effect's uncertainty is a :data:`LEVEL` Student-t interval over seeds.
Each variable declares a smallest effect of interest ``sesoi`` (:mod:`lrsc.variables`): a
change smaller than it is no effect worth the name. Then, in this order:

- **untestable**, with its computed reason: fewer than :data:`MIN_SEEDS` seeds, fewer than two
  compared LRs, a setting that does not learn its task (:func:`learns`), a variable that is
  undefined for these runs, or a variable pinned at one of its bounds (every compared value
  within ``sesoi`` of its floor or ceiling) *when the interval does not decide*: a bound
  never overrides an interval that excludes zero;
- **no effect**: the interval lies wholly inside ``(-sesoi, +sesoi)`` (two one-sided tests at
  the same level): the claimed effect is absent here, whatever its sign;
- **agrees** / **disagrees**: the interval excludes zero, on the claimed side or the other;
- **inconclusive**: anything else, with the number of seeds that would decide it, estimated
  from the observed effect and spread (:func:`seeds_needed`).

Every judged verdict carries ``p``, the two-sided p-value of "the effect is zero" (the test
whose interval is shown), so a ledger of many verdicts can count the decisions that chance
alone would make (:func:`q_values`, Benjamini-Hochberg). A correlation over runs (Fig. 12) is
judged the same way on a Fisher-z interval of the Spearman correlation, with at least
:data:`MIN_RUNS` runs; a claim about two variables at once ("gets both") combines two
verdicts (:func:`both`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from lrsc.results import look as presentation_of
from lrsc.variables import Presentation

LEVEL = 0.90  # the two-sided level of every interval
MIN_SEEDS = 3  # fewer seeds cannot show their own spread
MIN_RUNS = 10  # fewer runs cannot show a correlation
MAX_SEEDS = 1000  # seeds_needed looks no further
FDR = 0.10  # the false-discovery rate at which the ledger counts decisions (Benjamini-Hochberg)
LEARNS_SHARE = 0.2  # a setting learns its task when its best unbiased accuracy is this share of the way from chance to 1
CORRELATION_SESOI = 0.1  # the smallest Spearman correlation of interest
KINDS = ("agrees", "disagrees", "no effect", "inconclusive", "untestable")
DECISIVE = ("agrees", "disagrees")  # verdicts that find an effect


@dataclass(frozen=True)
class Verdict:
    """One judged claim.

    verdict: one of :data:`KINDS`; effect: the mean paired effect (or the correlation), in
    display units (``units``: e.g. ``points`` for accuracies); low / high: its :data:`LEVEL`
    interval; p: the two-sided p-value of a zero effect; seeds: the seeds paired; points: the
    LRs (or settings) compared, or the runs of a correlation; sesoi: the smallest effect of
    interest it was judged against; needed: for an inconclusive verdict, about how many seeds
    would decide it (None: more than :data:`MAX_SEEDS`, or not estimable); reason: why a claim
    is untestable (or, for a claim on two variables, each part's numbers).
    """

    verdict: str
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    seeds: int = 0
    points: int = 0
    units: str = ""
    reason: str = ""
    p: float = math.nan
    kind: str = "paired"
    side: int = 0  # +1 / -1: the effect is clearly positive / negative; 0: the data cannot tell
    sesoi: float | None = None
    needed: int | None = None

    @property
    def direction(self) -> str:
        """``rises``, ``falls``, ``does not move`` or ``shows no clear direction``: what the data show."""
        if self.verdict == "no effect":
            return "does not move"
        return {1: "rises", -1: "falls", 0: "shows no clear direction"}[self.side]

    @property
    def decided(self) -> bool:
        """Whether the data decide the claim (agrees, disagrees or no effect)."""
        return self.verdict in (*DECISIVE, "no effect")

    def numbers(self, digits: int = 3) -> str:
        """The effect, its interval and what it was judged on, e.g. ``+12.4 points, 90% CI +9.1 to +15.7, 3 seeds``."""
        f = f"{{:+.{digits}g}}"
        units = f" {self.units}" if self.units else ""
        interval = f"{int(LEVEL * 100)}% CI {f.format(self.low)} to {f.format(self.high)}" \
            if np.isfinite(self.low) else "no interval"
        if self.kind == "correlation":
            return f"Spearman {self.effect:+.2f}, {interval}, {self.points} runs"
        return f"{f.format(self.effect)}{units}, {interval}, {self.seeds} seeds"

    def text(self, digits: int = 3) -> str:
        """The numbers behind the verdict in one line, with what decides it or why it cannot be judged."""
        if self.kind == "both":
            return self.reason
        if self.verdict == "untestable":
            return f"{self.numbers(digits)}; {self.reason}" if np.isfinite(self.effect) else self.reason
        note = ""
        if self.verdict == "no effect":
            note = f"; inside ±{self.sesoi:g}{' ' + self.units if self.units else ''}"
        elif self.verdict == "inconclusive":
            note = f"; about {self.needed} seeds would decide it" if self.needed else \
                f"; more than {MAX_SEEDS} seeds would be needed" if self.kind == "paired" else ""
        return self.numbers(digits) + note


def _kind(low: float, high: float, expected: int, sesoi: float | None, stuck: str) -> tuple[str, str]:
    """``(verdict, reason)`` from an interval, by the order of the module docstring."""
    if stuck and low <= 0 <= high:
        return "untestable", stuck
    if sesoi is not None and -sesoi < low and high < sesoi:
        return "no effect", ""
    side = 1 if low > 0 else -1 if high < 0 else 0
    if side == 0:
        return "inconclusive", ""
    return ("agrees" if expected == 0 or side == expected else "disagrees"), ""


def seeds_needed(mean: float, sd: float, n: int, sesoi: float | None) -> int | None:
    """About how many seeds would decide a paired effect with this ``mean`` and seed ``sd``: the
    fewest ``N > n`` whose :data:`LEVEL` interval of the same mean and spread excludes zero, or
    lies within ``±sesoi``. None when more than :data:`MAX_SEEDS` would be needed."""
    big = np.arange(n + 1, MAX_SEEDS + 1)
    half = stats.t.ppf(0.5 + LEVEL / 2, big - 1) * sd / np.sqrt(big)
    ok = half < abs(mean)
    if sesoi is not None:
        ok |= half < sesoi - abs(mean)
    return int(big[ok][0]) if ok.any() else None


def from_effects(effects: Sequence[float], expected: int, *, points: int, units: str = "",
                 sesoi: float | None = None, stuck: str = "") -> Verdict:
    """The verdict on paired per-seed ``effects`` (display units) for a claim that they are positive
    (``expected`` +1), negative (-1) or non-zero (0). ``stuck``: why the variable cannot move
    (pinned at a bound), which makes an undecided interval untestable."""
    values = np.asarray(effects, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"one paired effect per seed expected, got an array of shape {values.shape}")
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return Verdict("untestable", seeds=0, points=points, units=units, sesoi=sesoi,
                       reason="the variable is undefined for these runs (no seed has a value; see its definition)")
    mean = float(values.mean())
    if n < MIN_SEEDS:
        return Verdict("untestable", mean, seeds=n, points=points, units=units, sesoi=sesoi,
                       reason=f"fewer than {MIN_SEEDS} seeds ({n})")
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n))
    low, high = mean - half, mean + half
    p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)) if sd > 0 else float(mean == 0)
    verdict, reason = _kind(low, high, expected, sesoi, stuck)
    side = 1 if low > 0 else -1 if high < 0 else 0
    needed = seeds_needed(mean, sd, n, sesoi) if verdict == "inconclusive" else None
    return Verdict(verdict, mean, low, high, n, points, units, reason, p, side=side, sesoi=sesoi, needed=needed)


def compared(ds: xr.Dataset, dim: str = "lr") -> list:
    """The values of ``dim`` at which every seed met its stopping criterion and none diverged,
    ascending (all of them for a dataset without ``converged`` / ``diverged``)."""
    ok = ds["converged"] & ~ds["diverged"] if "converged" in ds and "diverged" in ds else None
    values = ds[dim].values
    if ok is not None:
        ok = ok.all([d for d in ok.dims if d != dim]) if ok.ndim > 1 else ok
        values = values[ok.values]
    return sorted(values.tolist())


def not_compared(ds: xr.Dataset, dim: str = "lr") -> list[str]:
    """Each value of ``dim`` that :func:`compared` leaves out, and why, by seed: e.g.
    ``"lr 3.16: seeds 1, 4 diverged"``, ``"lr 0.1: seed 2 did not meet its stopping criterion"``."""
    if "seed" not in ds.dims:
        ds = ds.expand_dims(seed=[0])
    kept, out = compared(ds, dim), []
    for value in ds[dim].values.tolist():
        if value in kept:
            continue
        at = ds.sel({dim: value})
        others = [d for d in at.diverged.dims if d != "seed"]  # e.g. a second grid axis
        diverged, converged = at.diverged.any(others), at.converged.all(others)
        reasons = []
        for what, chosen in (("diverged", diverged), ("did not meet the stopping criterion", ~converged & ~diverged)):
            seeds = at.seed.values[chosen.values].tolist()
            if seeds:
                reasons.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} {what}")
        out.append(f"{dim} {value:g}: {', '.join(reasons)}")
    return out


def stuck(means: np.ndarray, look: Presentation) -> str:
    """Why the seed means (stored units) cannot show an effect: every one within the smallest
    effect of interest of the variable's ceiling, or of its floor (else ``""``)."""
    if look.sesoi is None or not len(means) or not np.all(np.isfinite(means)):
        return ""
    lo, hi = look.bounds
    margin = look.sesoi / look.scale
    shown = lambda v: f"{v * look.scale:g}{look.units}"  # noqa: E731
    within = f"{look.sesoi:g}{' ' + look.effect_units if look.effect_units else ''}"
    if hi is not None and np.all(means >= hi - margin):
        return f"at its ceiling: every compared value is within {within} of {shown(hi)}"
    if lo is not None and np.all(means <= lo + margin):
        return f"at its floor: every compared value is within {within} of {shown(lo)}"
    return ""


def learns(ds: xr.Dataset) -> str:
    """Whether a sweep's setting learns its core task, as every claim on it presumes: the unbiased
    test accuracy (seed mean) at its best grid point where every seed met its stopping criterion
    and none diverged must be at least :data:`LEARNS_SHARE` of the way from chance (``chance_acc``)
    to 100%. Returns why not, or ``""`` (also for a dataset without ``test_acc`` and ``chance_acc``,
    or without a compared point, which cannot tell)."""
    if "test_acc" not in ds or "chance_acc" not in ds:
        return ""
    acc = ds.test_acc
    if "converged" in ds and "diverged" in ds:
        acc = acc.where(ds.converged & ~ds.diverged)
    if "seed" in acc.dims:
        acc = acc.where(acc.notnull().all("seed")).mean("seed")
    if not acc.notnull().any():
        return ""
    chance = float(ds.chance_acc.max())
    best = float(acc.max())
    need = chance + LEARNS_SHARE * (1 - chance)
    if best >= need:
        return ""
    at = {d: acc[d].values[i] for d, i in zip(acc.dims, np.unravel_index(int(np.nanargmax(acc.values)), acc.shape))}
    where = ", ".join(f"{d} {v:g}" for d, v in at.items())
    return (f"this setting does not learn its task: its best unbiased accuracy is {100 * best:.1f}% ({where}), "
            f"against {100 * chance:.0f}% by chance; a claim needs at least {100 * need:.0f}%")


def trend(ds: xr.Dataset, var: str, expected: int = 1, dim: str = "lr", sign: int = 1) -> Verdict:
    """Whether ``var`` moves with ``dim`` as claimed (``expected`` +1 rises, -1 falls, 0 moves).

    Over the compared values of ``dim`` (:func:`compared`: every seed met its stopping
    criterion, none diverged), each seed's effect is the mean over the upper half minus the
    mean over the lower half (the middle value of an odd number goes to neither), times
    ``sign`` (-1 for a setting that acts like a larger LR as it *falls*, e.g. the batch size),
    in display units. ``ds`` has dims ``(dim, seed)``; a dataset without a ``seed`` dim is one
    seed. Preconditions, each an *untestable* verdict with its reason when unmet:
    :data:`MIN_SEEDS` seeds, two compared values, a setting that learns its task
    (:func:`learns`), a defined variable; and see the module docstring for bounds.
    """
    if "seed" not in ds[var].dims:
        ds = ds.expand_dims(seed=[0])
    look = presentation_of(ds, var)
    values = compared(ds, dim)
    if len(values) < 2:
        dropped = not_compared(ds, dim)
        why = f"; left out: {'; '.join(dropped)}" if dropped else ""
        return Verdict("untestable", seeds=ds.sizes["seed"], points=len(values), units=look.effect_units,
                       reason=f"fewer than two compared {dim} values ({len(values)}){why}")
    fails = learns(ds)
    if fails:
        return Verdict("untestable", seeds=ds.sizes["seed"], points=len(values), units=look.effect_units,
                       reason=fails)
    da = ds[var].sel({dim: values})
    half = len(values) // 2
    lower, upper = da.isel({dim: slice(0, half)}), da.isel({dim: slice(len(values) - half, None)})
    effects = (sign * look.scale * (upper.mean(dim) - lower.mean(dim))).values
    return from_effects(effects, expected, points=len(values), units=look.effect_units, sesoi=look.sesoi,
                        stuck=stuck(da.mean("seed").values, look))


def contrast(a: Sequence[float], b: Sequence[float], expected: int = 1, *, points: int = 2,
             look: Presentation | None = None) -> Verdict:
    """The paired verdict on ``b - a`` (stored units, per seed, same order) for a claim that it is
    positive (``expected`` +1), in the display units of ``look`` (the variable's presentation;
    default: unscaled, no smallest effect of interest, no bounds)."""
    look = look or Presentation()
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    means = np.array([np.nanmean(a), np.nanmean(b)]) if len(a) else np.array([])
    return from_effects(look.scale * (b - a), expected, points=points, units=look.effect_units, sesoi=look.sesoi,
                        stuck=stuck(means, look))


def both(parts: dict[str, Verdict], expected: int = 1) -> Verdict:
    """The verdict on two claims at once (``{name: verdict}``, each "this one rises").

    ``expected`` +1, "both rise": agrees when both agree, disagrees when either disagrees or shows
    no effect; -1, "not both rise": agrees when either disagrees or shows no effect, disagrees
    when both agree. Untestable when a part is and the other does not already decide; else
    inconclusive. ``p``: for "both rise" the larger part's (an intersection-union test), for
    "not both" twice the smaller (Bonferroni). Its text gives each part's numbers.
    """
    found = list(parts.values())
    detail = "; ".join(f"{name}: {v.verdict}, {v.text()}" for name, v in parts.items())
    seeds, points = min(v.seeds for v in found), min(v.points for v in found)
    ps = [v.p for v in found]
    all_rise = all(v.verdict == "agrees" for v in found)
    one_fails = any(v.verdict in ("disagrees", "no effect") for v in found)
    if all_rise:
        verdict = "agrees" if expected > 0 else "disagrees"
    elif one_fails:
        verdict = "disagrees" if expected > 0 else "agrees"
    elif any(v.verdict == "untestable" for v in found):
        verdict = "untestable"
    else:
        verdict = "inconclusive"
    p = max(ps) if expected > 0 else min(1.0, 2 * min(ps))
    return Verdict(verdict, seeds=seeds, points=points, reason=detail, kind="both", p=float(p),
                   side=1 if all_rise else -1 if one_fails else 0)


def correlation(x: Sequence[float], y: Sequence[float], groups: Sequence, expected: int = 1) -> Verdict:
    """Whether ``y`` rises (``expected`` +1) or falls with ``x`` over runs: the Spearman
    correlation of the values centred within each group (so groups at different levels make no
    correlation of their own), with a :data:`LEVEL` Fisher-z interval (standard error
    ``sqrt((1 + r^2 / 2) / (n - 3))``, Bonett & Wright 2000) judged like a paired effect against
    :data:`CORRELATION_SESOI`. Untestable with fewer than :data:`MIN_RUNS` runs."""
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[keep], y[keep], groups[keep]
    n = len(x)
    if n < MIN_RUNS:
        return Verdict("untestable", points=n, kind="correlation", reason=f"fewer than {MIN_RUNS} runs ({n})")
    labels = np.unique(groups, return_inverse=True)[1]

    def centred(v: np.ndarray) -> np.ndarray:
        return v - (np.bincount(labels, v) / np.bincount(labels))[labels]

    cx, cy = centred(x), centred(y)
    if np.ptp(cx) == 0 or np.ptp(cy) == 0:
        return Verdict("untestable", points=n, kind="correlation", reason="no variation within the sweeps")
    rho = float(stats.spearmanr(cx, cy).statistic)
    z, se = math.atanh(max(-0.999999, min(0.999999, rho))), math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    q = stats.norm.ppf(0.5 + LEVEL / 2)
    low, high = math.tanh(z - q * se), math.tanh(z + q * se)
    verdict, _ = _kind(low, high, expected, CORRELATION_SESOI, "")
    side = 1 if low > 0 else -1 if high < 0 else 0
    return Verdict(verdict, rho, low, high, points=n, p=float(2 * stats.norm.sf(abs(z) / se)), kind="correlation",
                   side=side, sesoi=CORRELATION_SESOI)


def q_values(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (NaN entries stay NaN and do not count): the smallest
    false-discovery rate at which each test would be a discovery."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return q
    order = ok[np.argsort(p[ok])]
    m = len(order)
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def with_reason(verdict: Verdict, reason: str) -> Verdict:
    """``verdict`` made untestable for ``reason`` (a precondition the claim's data do not meet)."""
    return replace(verdict, verdict="untestable", reason=reason, needed=None)
