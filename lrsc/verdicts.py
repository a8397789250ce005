"""The book's one verdict rule: does a run agree with a claim of the paper, and how sure can we be?

Runs of one seed share their initialisation, data order and (for synthetic data) their
dataset, so every comparison is made *within* seeds: each seed gives one paired effect (for
a trend with LR: the mean over the upper half of the compared LRs minus the mean over the
lower half), and the effect's uncertainty is a :data:`LEVEL` Student-t interval over seeds.

- **agrees**: the interval lies entirely on the side the claim expects;
- **disagrees**: it lies entirely on the other side;
- **inconclusive**: it contains zero — the data cannot tell;
- **untestable**, with its reason: fewer than :data:`MIN_SEEDS` seeds, fewer than two compared
  LRs, or the variable sitting at its ceiling (or floor) over the whole range, where it has
  no room to move the claimed way (every compared seed mean within :data:`CEILING_MARGIN` of
  its range of the bound).

A claim of a correlation over runs (Fig. 12) takes a permutation test of the same level
(one-sided, 5% each way for the 90% level) with at least :data:`MIN_RUNS` runs. A claim about
two variables at once ("gets both") combines two trend verdicts. Every verdict carries its
effect, interval and seed count, and :meth:`Verdict.text` says them in one line, so pages
glue the verdict itself rather than a number a reader must compare.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import xarray as xr

LEVEL = 0.90  # the two-sided level of every interval
MIN_SEEDS = 3  # fewer seeds cannot show their own spread
MIN_RUNS = 10  # fewer runs cannot show a correlation
CEILING_MARGIN = 0.1  # a variable within this share of its range of a bound at every compared LR is stuck there
N_PERMUTATIONS = 2000
VERDICTS = ("agrees", "disagrees", "inconclusive", "untestable")


@dataclass(frozen=True)
class Verdict:
    """One judged claim.

    verdict: one of :data:`VERDICTS`; effect: the mean paired effect (or the correlation), in
    display units (``units``: e.g. ``points`` for accuracies); low / high: its :data:`LEVEL`
    interval (NaN for a correlation, which has ``p``, the one-sided permutation p-value in the
    claimed direction); seeds: the seeds paired; points: the LRs (or settings) compared, or the
    runs of a correlation; reason: why a claim is untestable, or what was compared.
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

    @property
    def direction(self) -> str:
        """``rises``, ``falls`` or ``shows no clear direction``: what the data show, whatever was claimed."""
        return {1: "rises", -1: "falls", 0: "shows no clear direction"}[self.side]

    def text(self, digits: int = 3) -> str:
        """The numbers behind the verdict in one line, e.g. ``+12.4 points, 90% CI +9.1 to +15.7, 3 seeds``."""
        if self.kind == "both" or (self.verdict == "untestable" and not np.isfinite(self.effect)):
            return self.reason
        f = f"{{:+.{digits}g}}"
        units = f" {self.units}" if self.units else ""
        if self.kind == "correlation":
            return f"Spearman {self.effect:+.2f} over {self.points} runs, permutation p = {self.p:.3g}"
        interval = f"{int(LEVEL * 100)}% CI {f.format(self.low)} to {f.format(self.high)}" \
            if np.isfinite(self.low) else "no interval"
        note = f"; {self.reason}" if self.reason and self.verdict == "untestable" else ""
        return f"{f.format(self.effect)}{units}, {interval}, {self.seeds} seeds{note}"


def from_effects(effects: Sequence[float], expected: int, *, points: int, units: str = "") -> Verdict:
    """The verdict on paired per-seed ``effects`` for a claim that they are positive
    (``expected`` +1), negative (-1) or non-zero (0)."""
    values = np.asarray(effects, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"one paired effect per seed expected, got an array of shape {values.shape}")
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return Verdict("untestable", seeds=0, points=points, units=units, reason="no seed has a value")
    mean = float(values.mean())
    if n < MIN_SEEDS:
        return Verdict("untestable", mean, seeds=n, points=points, units=units,
                       reason=f"fewer than {MIN_SEEDS} seeds ({n})")
    from scipy import stats

    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    side = 1 if low > 0 else -1 if high < 0 else 0
    verdict = "inconclusive" if side == 0 else ("agrees" if expected == 0 or side == expected else "disagrees")
    return Verdict(verdict, mean, low, high, n, points, units, side=side)


def compared(ds: xr.Dataset, axis: str = "lr") -> list:
    """The values of ``axis`` at which every seed met its stopping criterion and none diverged,
    ascending (all of them for a dataset without ``converged`` / ``diverged``)."""
    ok = ds["converged"] & ~ds["diverged"] if "converged" in ds and "diverged" in ds else None
    values = ds[axis].values
    if ok is not None:
        ok = ok.all([d for d in ok.dims if d != axis]) if ok.ndim > 1 else ok
        values = values[ok.values]
    return sorted(values.tolist())


def presentation(da: xr.DataArray) -> tuple[float, str, tuple | None]:
    """``(scale, effect units, bounds)`` of a variable, from its stored attributes."""
    import json

    scale = float(da.attrs.get("display_scale", 1.0))
    units = "points" if da.attrs.get("display_units") == "%" else da.attrs.get("display_units", "")
    bounds = json.loads(da.attrs["bounds"]) if da.attrs.get("bounds") else None
    return scale, units, tuple(bounds) if bounds else None


def _stuck(means: np.ndarray, bounds: tuple | None, expected: int) -> str:
    """Why the seed means cannot move the ``expected`` way: at the ceiling or floor (else ``""``)."""
    if not bounds or not len(means):
        return ""
    lo, hi = bounds
    margin = CEILING_MARGIN * (hi - lo)
    if expected >= 0 and np.all(means >= hi - margin):
        return f"at its ceiling: every compared value is within {margin:g} of {hi:g}"
    if expected <= 0 and np.all(means <= lo + margin):
        return f"at its floor: every compared value is within {margin:g} of {lo:g}"
    return ""


def trend(ds: xr.Dataset, var: str, expected: int = 1, axis: str = "lr", sign: int = 1) -> Verdict:
    """Whether ``var`` moves with ``axis`` as claimed (``expected`` +1 rises, -1 falls, 0 moves).

    Over the compared values of ``axis`` (:func:`compared`), each seed's effect is the mean over
    the upper half minus the mean over the lower half (the middle value of an odd number goes
    to neither), times ``sign`` (-1 for a setting that acts like a larger LR as it *falls*,
    e.g. the batch size), in display units. ``ds`` has dims ``(axis, seed)``; a dataset without
    a ``seed`` dim is one seed.
    """
    if "seed" not in ds[var].dims:
        ds = ds.expand_dims(seed=[0])
    scale, units, bounds = presentation(ds[var])
    values = compared(ds, axis)
    if len(values) < 2:
        return Verdict("untestable", seeds=ds.sizes["seed"], points=len(values), units=units,
                       reason=f"fewer than two compared {axis} values ({len(values)})")
    da = ds[var].sel({axis: values})
    stuck = _stuck(da.mean("seed").values, bounds, expected * sign)
    half = len(values) // 2
    lower, upper = da.isel({axis: slice(0, half)}), da.isel({axis: slice(len(values) - half, None)})
    effects = (sign * scale * (upper.mean(axis) - lower.mean(axis))).values
    verdict = from_effects(effects, expected, points=len(values), units=units)
    return replace(verdict, verdict="untestable", reason=stuck) if stuck else verdict


def contrast(a: Sequence[float], b: Sequence[float], expected: int = 1, *, points: int = 2, units: str = "",
             scale: float = 1.0, bounds: tuple | None = None) -> Verdict:
    """The paired verdict on ``b - a`` (per seed, same order) for a claim that it is positive
    (``expected`` +1); untestable, as in :func:`trend`, when both means sit at a bound (the
    variable's ``bounds``, in stored units) that leaves no room to move the claimed way."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    verdict = from_effects(scale * (b - a), expected, points=points, units=units)
    stuck = _stuck(np.array([np.nanmean(a), np.nanmean(b)]), bounds, expected)
    return replace(verdict, verdict="untestable", reason=stuck) if stuck else verdict


def both(parts: dict[str, Verdict], expected: int = 1) -> Verdict:
    """The verdict on two claims at once (``{name: verdict}``, each "this one rises").
    ``expected`` +1: "both hold" (agrees when both agree, disagrees when either disagrees);
    -1: "not both" (disagrees when both agree, agrees when either disagrees). Untestable when
    either is; inconclusive otherwise. Its text gives each part's numbers."""
    found = list(parts.values())
    detail = "; ".join(f"{name}: {v.text()}" for name, v in parts.items())
    seeds, points = min(v.seeds for v in found), min(v.points for v in found)
    if any(v.verdict == "untestable" for v in found):
        return Verdict("untestable", seeds=seeds, points=points, reason=detail, kind="both")
    agree, disagree = all(v.verdict == "agrees" for v in found), any(v.verdict == "disagrees" for v in found)
    if expected > 0:
        verdict = "agrees" if agree else "disagrees" if disagree else "inconclusive"
    else:
        verdict = "disagrees" if agree else "agrees" if disagree else "inconclusive"
    return Verdict(verdict, seeds=seeds, points=points, reason=detail, kind="both")


def correlation(x: Sequence[float], y: Sequence[float], groups: Sequence, expected: int = 1,
                seed: int = 0) -> Verdict:
    """Whether ``y`` rises (``expected`` +1) or falls with ``x`` over runs: the Spearman
    correlation of the values centred within each group (so groups at different levels make
    no correlation of their own), with a one-sided permutation test (``y`` permuted within
    groups, :data:`N_PERMUTATIONS` times, seeded). Untestable with fewer than :data:`MIN_RUNS` runs."""
    from scipy import stats

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
    rng = np.random.default_rng(seed)
    null = np.empty(N_PERMUTATIONS)
    for k in range(N_PERMUTATIONS):
        perm = np.empty(n, dtype=int)
        for g in np.unique(labels):
            idx = np.flatnonzero(labels == g)
            perm[idx] = rng.permutation(idx)
        null[k] = stats.spearmanr(cx, centred(y[perm])).statistic
    up, down = (np.sum(null >= rho) + 1) / (N_PERMUTATIONS + 1), (np.sum(null <= rho) + 1) / (N_PERMUTATIONS + 1)
    alpha = (1 - LEVEL) / 2
    side = 1 if up < alpha else -1 if down < alpha else 0
    verdict = "inconclusive" if side == 0 else "agrees" if side == expected else "disagrees"
    return Verdict(verdict, rho, points=n, p=float(up if expected >= 0 else down), kind="correlation", side=side)
