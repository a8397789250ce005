"""The one verdict rule, on hand-made data with known answers: paired effects over seeds, their
90% t-interval, agreeing, disagreeing, inconclusive and untestable claims, correlations and
"both" claims."""
import math

import numpy as np
import pytest
import xarray as xr

from lrsc import variables, verdicts

LRS = [0.01, 0.03, 0.1, 0.3]
T_90_2DF = 2.919985580355516  # the 95% quantile of Student's t with 2 degrees of freedom


def _sweep(values, var="test_acc", converged=None, seeds=None) -> xr.Dataset:
    """A collected sweep with dims (lr, seed): ``values[i][j]`` at LR i, seed j; ``var`` gets its
    registered attributes (accuracies judged in points)."""
    values = np.asarray(values, float)
    ok = np.ones(values.shape, bool) if converged is None else np.asarray(converged)
    ds = xr.Dataset({var: (("lr", "seed"), values), "converged": (("lr", "seed"), ok),
                     "diverged": (("lr", "seed"), np.zeros(values.shape, bool))},
                    coords={"lr": LRS[:values.shape[0]], "seed": seeds or list(range(values.shape[1]))})
    if var in variables.REGISTRY:
        ds[var].attrs.update(variables.get(var).attrs())
    return ds


RISING = [[0.50, 0.52, 0.51], [0.55, 0.56, 0.54], [0.70, 0.71, 0.69], [0.80, 0.82, 0.81]]


def test_paired_effect_and_its_interval_by_hand():
    v = verdicts.trend(_sweep(RISING), "test_acc")
    # per seed, upper half (LRs 0.1, 0.3) minus lower half (0.01, 0.03), in points
    per_seed = [100 * ((0.70 + 0.80) - (0.50 + 0.55)) / 2, 100 * ((0.71 + 0.82) - (0.52 + 0.56)) / 2,
                100 * ((0.69 + 0.81) - (0.51 + 0.54)) / 2]
    half = T_90_2DF * np.std(per_seed, ddof=1) / math.sqrt(3)
    assert v.effect == pytest.approx(np.mean(per_seed))
    assert (v.low, v.high) == (pytest.approx(np.mean(per_seed) - half), pytest.approx(np.mean(per_seed) + half))
    assert (v.verdict, v.side, v.seeds, v.points, v.units) == ("agrees", 1, 3, 4, "points")
    assert v.text().startswith(f"+{np.mean(per_seed):.3g} points, 90% CI")


@pytest.mark.parametrize("values, expected, verdict", [
    (RISING, 1, "agrees"), (RISING[::-1], 1, "disagrees"), (RISING[::-1], -1, "agrees"), (RISING, 0, "agrees")])
def test_the_interval_decides(values, expected, verdict):
    assert verdicts.trend(_sweep(values), "test_acc", expected).verdict == verdict


def test_seeds_that_disagree_are_inconclusive_and_say_how_many_would_decide():
    # two seeds rise by 10 points, one falls by 15: the mean is positive, the interval holds zero
    values = [[0.50, 0.50, 0.65], [0.50, 0.50, 0.65], [0.60, 0.60, 0.50], [0.60, 0.60, 0.50]]
    v = verdicts.trend(_sweep(values), "test_acc")
    assert v.effect > 0 and v.low < 0 < v.high
    assert v.verdict == "inconclusive" and v.side == 0 and v.direction == "shows no clear direction"
    # by hand: the fewest N > 3 seeds whose interval, with this mean and spread, excludes zero or lies inside +-1 point
    effects = [10.0, 10.0, -15.0]
    mean, sd = np.mean(effects), np.std(effects, ddof=1)
    from scipy import stats
    n = next(n for n in range(4, 1001) if stats.t.ppf(0.95, n - 1) * sd / math.sqrt(n) < abs(mean))
    assert v.needed == n and f"about {n} seeds would decide it" in v.text()


def test_no_effect_is_a_decision_apart_from_cannot_tell():
    # every seed moves by under a tenth of a point: the interval lies inside the 1-point smallest effect of interest
    flat = [[0.800, 0.810, 0.790], [0.800, 0.810, 0.790], [0.801, 0.8112, 0.7908], [0.801, 0.8112, 0.7908]]
    v = verdicts.trend(_sweep(flat), "test_acc")
    assert v.verdict == "no effect" and v.decided and -1 < v.low and v.high < 1
    assert v.low > 0  # it even excludes zero: an effect too small to count is still no effect
    assert "inside ±1 points" in v.text() and v.direction == "does not move"
    # a wide interval that contains zero is not no effect: it cannot tell
    wide = verdicts.from_effects([-20.0, 13.0, 2.0], 1, points=2, units="points", sesoi=1.0)
    assert wide.verdict == "inconclusive" and wide.needed is not None


def test_p_values_and_q_values_by_hand():
    v = verdicts.from_effects([1.0, 2.0, 3.0], 1, points=2)
    t = 2.0 / (1.0 / math.sqrt(3))
    from scipy import stats
    assert v.p == pytest.approx(2 * stats.t.sf(t, 2))
    # Benjamini-Hochberg: sorted p 0.01, 0.02, 0.03, 0.5 of m = 4 give q 0.04, 0.04, 0.04, 0.5; NaN stays NaN
    q = verdicts.q_values([0.03, np.nan, 0.01, 0.5, 0.02])
    assert np.allclose(q[[0, 2, 3, 4]], [0.04, 0.04, 0.5, 0.04]) and np.isnan(q[1])


def test_untestable_with_few_seeds_or_lrs():
    two_seeds = verdicts.trend(_sweep([row[:2] for row in RISING]), "test_acc")
    assert two_seeds.verdict == "untestable" and "fewer than 3 seeds (2)" in two_seeds.reason
    assert two_seeds.effect > 0 and math.isnan(two_seeds.low)  # the effect is shown, without an interval
    # only one LR where every seed converged: nothing to compare, and the reason names the LRs left out
    converged = np.ones((4, 3), bool)
    converged[1:, 0] = False
    one_lr = verdicts.trend(_sweep(RISING, converged=converged), "test_acc")
    assert one_lr.verdict == "untestable" and "fewer than two compared lr values (1)" in one_lr.reason
    assert "left out: lr 0.03: seed 0 did not meet the stopping criterion; lr 0.1: seed 0 did not" in one_lr.reason
    diverged = _sweep(RISING, converged=converged)
    diverged["diverged"][3, 1:] = True  # seeds 1 and 2 diverged at the largest LR, which seed 0 never fitted either
    reason = verdicts.trend(diverged, "test_acc").reason
    assert "lr 0.3: seeds 1, 2 diverged, seed 0 did not meet the stopping criterion" in reason
    # an unconverged LR is left out, not counted
    converged = np.ones((4, 3), bool)
    converged[3, 1] = False
    assert verdicts.trend(_sweep(RISING, converged=converged), "test_acc").points == 3


def test_a_pinned_variable_is_untestable_only_when_the_interval_does_not_decide():
    # accuracy within a point of 100% at every LR, moving less than its spread: untestable at the ceiling
    top = [[0.995, 0.999, 0.992], [0.999, 0.993, 0.998], [0.994, 0.999, 0.996], [0.998, 0.995, 0.999]]
    v = verdicts.trend(_sweep(top), "test_acc")
    assert v.verdict == "untestable" and "at its ceiling" in v.reason and v.low < 0 < v.high
    # at the ceiling, but the interval excludes zero: the bound never overrides a decision
    climbing = [[0.991, 0.992, 0.991], [0.993, 0.994, 0.993], [0.997, 0.998, 0.997], [0.999, 1.0, 0.999]]
    assert verdicts.trend(_sweep(climbing), "test_acc").verdict in ("agrees", "no effect")
    assert verdicts.trend(_sweep(climbing), "test_acc").verdict != "untestable"
    # the floor counts for a rising claim too: worst-group accuracy 0 everywhere cannot show anything
    zero = [[0.0] * 3] * 4
    floor = verdicts.trend(_sweep(zero, "worst_group_acc"), "worst_group_acc")
    assert floor.verdict == "untestable" and "at its floor" in floor.reason
    # prunability is not bounded by 1: values near 1 are judged (here, a clear rise)
    near_one = [[0.93, 0.94, 0.93], [0.96, 0.97, 0.96], [1.00, 1.01, 1.00], [1.03, 1.04, 1.03]]
    assert verdicts.trend(_sweep(near_one, "prunability"), "prunability").verdict == "agrees"


def test_a_setting_that_does_not_learn_its_task_is_untestable():
    ds = _sweep([[0.11, 0.12, 0.10], [0.15, 0.16, 0.14], [0.20, 0.21, 0.19], [0.25, 0.26, 0.24]])
    ds["chance_acc"] = (("lr", "seed"), np.full((4, 3), 0.1))
    v = verdicts.trend(ds, "test_acc")  # 25% at best: less than a fifth of the way from 10% to 100% (28%)
    assert v.verdict == "untestable" and "does not learn its task" in v.reason and "25.0%" in v.reason
    ds["chance_acc"] = (("lr", "seed"), np.full((4, 3), 0.05))  # the same accuracies against a lower chance learn
    assert verdicts.trend(ds, "test_acc").verdict == "agrees"


def test_any_axis_and_a_setting_that_acts_as_a_smaller_value():
    ds = _sweep(RISING).rename(lr="batch_size").assign_coords(batch_size=[10, 25, 50, 100])
    # accuracy rises with the batch size, so it falls as the batch shrinks (which acts like a larger LR)
    assert verdicts.trend(ds, "test_acc", dim="batch_size", sign=-1).verdict == "disagrees"


def test_contrast_and_both():
    assert verdicts.contrast([1, 2, 3], [2, 3.1, 4.05], 1).verdict == "agrees"
    assert verdicts.contrast([1, 2, 3], [2, 1, 4], 1).verdict == "inconclusive"
    share = variables.Presentation(bounds=(0.0, 1.0), sesoi=0.02)
    # a share at 1 on both sides, not moving beyond its spread: untestable by the same rule as a trend
    at_one = verdicts.contrast([1.0, 0.99, 0.995], [0.995, 1.0, 0.99], 1, look=share)
    assert at_one.verdict == "untestable" and "at its ceiling" in at_one.reason
    assert verdicts.contrast([0.5, 0.55, 0.6], [0.95, 0.97, 0.99], 1, look=share).verdict == "agrees"
    up = verdicts.from_effects([1.0, 1.1, 0.9], 1, points=2)
    down = verdicts.from_effects([-1.0, -1.1, -0.9], 1, points=2)
    unclear = verdicts.from_effects([1.0, -1.0, 0.1], 1, points=2)
    flat = verdicts.from_effects([0.001, -0.001, 0.0], 1, points=2, sesoi=0.1)
    few = verdicts.from_effects([1.0, 1.1], 1, points=2)
    assert flat.verdict == "no effect"
    assert verdicts.both({"a": up, "b": up}).verdict == "agrees"
    assert verdicts.both({"a": up, "b": down}).verdict == "disagrees"
    assert verdicts.both({"a": up, "b": flat}).verdict == "disagrees"  # an absent effect fails "both rise"
    assert verdicts.both({"a": up, "b": unclear}).verdict == "inconclusive"
    assert verdicts.both({"a": up, "b": few}).verdict == "untestable"
    assert verdicts.both({"a": down, "b": few}).verdict == "disagrees"  # one part already decides
    # "not both": disagrees when both clearly improve, agrees when one worsens or does not move
    assert verdicts.both({"a": up, "b": up}, expected=-1).verdict == "disagrees"
    assert verdicts.both({"a": up, "b": down}, expected=-1).verdict == "agrees"
    assert verdicts.both({"a": up, "b": flat}, expected=-1).verdict == "agrees"
    assert verdicts.both({"a": up, "b": unclear}, expected=-1).verdict == "inconclusive"
    assert "a: agrees, +1" in verdicts.both({"a": up, "b": up}).text()
    # p: the larger part's for "both", twice the smaller for "not both"
    assert verdicts.both({"a": up, "b": down}).p == pytest.approx(max(up.p, down.p))
    assert verdicts.both({"a": up, "b": down}, expected=-1).p == pytest.approx(min(1.0, 2 * min(up.p, down.p)))


def test_correlation_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    groups = np.repeat(["a", "b", "c"], 10)
    level = np.repeat([0.0, 10.0, -5.0], 10)  # groups at other levels: centring removes that
    agree = verdicts.correlation(x, x + 0.1 * rng.normal(size=30) + level, groups)
    assert agree.verdict == "agrees" and agree.low > 0 and agree.p < 0.1
    assert verdicts.correlation(x, -x + level, groups).verdict == "disagrees"
    assert verdicts.correlation(x, rng.normal(size=30), groups).verdict == "inconclusive"
    few = verdicts.correlation(x[:verdicts.MIN_RUNS - 1], x[:verdicts.MIN_RUNS - 1], groups[:verdicts.MIN_RUNS - 1])
    assert few.verdict == "untestable" and "fewer than 10 runs" in few.reason
    # the level difference between groups alone makes no correlation: nothing varies within them
    assert verdicts.correlation(x, level, groups).verdict == "untestable"
    # many runs, no relation: the interval closes in on zero and the verdict is no effect
    big = rng.normal(size=4000)
    assert verdicts.correlation(big, rng.normal(size=4000), np.zeros(4000)).verdict == "no effect"
