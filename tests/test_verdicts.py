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


def test_seeds_that_disagree_are_inconclusive():
    # two seeds rise by 10 points, one falls by 15: the mean is positive, the interval holds zero
    values = [[0.50, 0.50, 0.65], [0.50, 0.50, 0.65], [0.60, 0.60, 0.50], [0.60, 0.60, 0.50]]
    v = verdicts.trend(_sweep(values), "test_acc")
    assert v.effect > 0 and v.low < 0 < v.high
    assert v.verdict == "inconclusive" and v.side == 0 and v.direction == "shows no clear direction"


def test_untestable_with_few_seeds_or_lrs():
    two_seeds = verdicts.trend(_sweep([row[:2] for row in RISING]), "test_acc")
    assert two_seeds.verdict == "untestable" and "fewer than 3 seeds (2)" in two_seeds.reason
    assert two_seeds.effect > 0 and math.isnan(two_seeds.low)  # the effect is shown, without an interval
    # only one LR where every seed converged: nothing to compare
    converged = np.ones((4, 3), bool)
    converged[1:, 0] = False
    one_lr = verdicts.trend(_sweep(RISING, converged=converged), "test_acc")
    assert one_lr.verdict == "untestable" and "fewer than two compared lr values (1)" in one_lr.reason
    # an unconverged LR is left out, not counted
    converged = np.ones((4, 3), bool)
    converged[3, 1] = False
    assert verdicts.trend(_sweep(RISING, converged=converged), "test_acc").points == 3


def test_a_variable_at_its_ceiling_is_untestable():
    # prunability within a tenth of its range of 1 at every LR: it has no room to rise
    stuck = [[0.93, 0.94, 0.93], [0.94, 0.95, 0.94], [0.95, 0.95, 0.94], [0.95, 0.96, 0.95]]
    v = verdicts.trend(_sweep(stuck, "prunability"), "prunability")
    assert v.verdict == "untestable" and "at its ceiling" in v.reason
    # the same values claimed to fall can be judged: a ceiling does not stop a fall
    assert verdicts.trend(_sweep(stuck, "prunability"), "prunability", expected=-1).verdict == "disagrees"
    # well below the ceiling, the same rise is judged
    lower = [[v - 0.3 for v in row] for row in stuck]
    assert verdicts.trend(_sweep(lower, "prunability"), "prunability").verdict == "agrees"


def test_any_axis_and_a_setting_that_acts_as_a_smaller_value():
    ds = _sweep(RISING).rename(lr="batch_size").assign_coords(batch_size=[10, 25, 50, 100])
    # accuracy rises with the batch size, so it falls as the batch shrinks (which acts like a larger LR)
    assert verdicts.trend(ds, "test_acc", axis="batch_size", sign=-1).verdict == "disagrees"


def test_contrast_and_both():
    assert verdicts.contrast([1, 2, 3], [2, 3.1, 4.05], 1).verdict == "agrees"
    assert verdicts.contrast([1, 2, 3], [2, 1, 4], 1).verdict == "inconclusive"
    # a share at 1 on both sides has no room to rise: untestable by the same rule as a trend
    at_one = verdicts.contrast([1.0, 1.0, 0.99], [1.0, 1.0, 1.0], 1, bounds=(0.0, 1.0))
    assert at_one.verdict == "untestable" and "at its ceiling" in at_one.reason
    # one side below the margin: judged as usual
    assert verdicts.contrast([0.5, 0.55, 0.6], [0.95, 0.97, 0.99], 1, bounds=(0.0, 1.0)).verdict == "agrees"
    up = verdicts.from_effects([1.0, 1.1, 0.9], 1, points=2)
    down = verdicts.from_effects([-1.0, -1.1, -0.9], 1, points=2)
    unclear = verdicts.from_effects([1.0, -1.0, 0.1], 1, points=2)
    few = verdicts.from_effects([1.0, 1.1], 1, points=2)
    assert verdicts.both({"a": up, "b": up}).verdict == "agrees"
    assert verdicts.both({"a": up, "b": down}).verdict == "disagrees"
    assert verdicts.both({"a": up, "b": unclear}).verdict == "inconclusive"
    assert verdicts.both({"a": up, "b": few}).verdict == "untestable"
    # "not both": disagrees when both clearly improve, agrees when one clearly worsens
    assert verdicts.both({"a": up, "b": up}, expected=-1).verdict == "disagrees"
    assert verdicts.both({"a": up, "b": down}, expected=-1).verdict == "agrees"
    assert verdicts.both({"a": up, "b": unclear}, expected=-1).verdict == "inconclusive"
    assert "a: +1" in verdicts.both({"a": up, "b": up}).text()


def test_correlation_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    groups = np.repeat(["a", "b", "c"], 10)
    level = np.repeat([0.0, 10.0, -5.0], 10)  # groups at other levels: centring removes that
    assert verdicts.correlation(x, x + 0.1 * rng.normal(size=30) + level, groups).verdict == "agrees"
    assert verdicts.correlation(x, -x + level, groups).verdict == "disagrees"
    assert verdicts.correlation(x, rng.normal(size=30), groups).verdict == "inconclusive"
    few = verdicts.correlation(x[:verdicts.MIN_RUNS - 1], x[:verdicts.MIN_RUNS - 1], groups[:verdicts.MIN_RUNS - 1])
    assert few.verdict == "untestable" and "fewer than 10 runs" in few.reason
    # the level difference between groups alone makes no correlation: nothing varies within them
    assert verdicts.correlation(x, level, groups).verdict == "untestable"
