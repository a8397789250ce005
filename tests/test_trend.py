"""The robust LR effect (report.trend) on hand-made sweeps: agreeing, disagreeing, inconclusive."""
import numpy as np
import xarray as xr

from lrsc import report


def _sweep(values, converged=None) -> xr.Dataset:
    """A sweep with dims (lr, seed): ``values[i][j]`` at LR i and seed j."""
    values = np.asarray(values, dtype=float)
    lrs, seeds = [0.1, 0.2, 0.4, 0.8][: values.shape[0]], list(range(values.shape[1]))
    ok = np.ones_like(values, bool) if converged is None else np.asarray(converged)
    return xr.Dataset({"m": (("lr", "seed"), values), "converged": (("lr", "seed"), ok),
                       "diverged": (("lr", "seed"), np.zeros_like(values, bool))}, coords={"lr": lrs, "seed": seeds})


def test_a_clear_rise_agrees_and_a_clear_fall_disagrees():
    rise = report.trend(_sweep([[1.0, 1.1], [2.0, 2.1], [3.0, 3.2], [4.0, 4.1]]), "m")
    # halves: lower (LRs 0.1, 0.2), upper (0.4, 0.8); per seed differences 2.0 and 2.05
    assert rise.effect == 2.025 and abs(rise.spread - np.std([2.0, 2.05], ddof=1)) < 1e-12 and rise.rank == 1.0
    assert (rise.direction, rise.words, rise.verdict(1), rise.verdict(-1)) == (1, "rises", "agrees", "disagrees")
    fall = report.trend(_sweep([[4.0, 4.0], [3.0, 3.1], [2.0, 2.0], [1.0, 1.2]]), "m")
    assert fall.verdict(1) == "disagrees" and "against the paper's claim" in report.trend_sentence(
        _sweep([[4.0, 4.0], [3.0, 3.1], [2.0, 2.0], [1.0, 1.2]]), "m")


def test_effect_within_seed_spread_or_against_the_ranks_is_inconclusive():
    # the two seeds move in opposite directions: no effect beyond the seed spread
    opposite = report.trend(_sweep([[1.0, 4.5], [2.0, 3.0], [3.0, 2.0], [4.0, 1.0]]), "m")
    assert abs(opposite.effect) < opposite.spread and opposite.verdict(1) == "inconclusive"
    # the halves rise beyond the spread, but the seed means fall at three of four LRs
    against = report.trend(_sweep([[8.0, 8.0], [1.0, 1.0], [7.0, 7.0], [6.0, 6.0]]), "m")
    assert against.effect > against.spread and against.rank < 0
    assert against.direction == 0 and against.words == "shows no clear direction"


def test_only_compared_lrs_count():
    # the smallest LR did not converge: it is left out, and the rise over the other three is clear
    ds = _sweep([[9.0, 9.0], [1.0, 1.1], [2.0, 2.2], [3.0, 3.1]], converged=[[False, True]] + [[True, True]] * 3)
    t = report.trend(ds, "m")
    assert t.n_lrs == 3 and t.verdict(1) == "agrees" and t.low == 1.05
    single = report.trend(_sweep([[1.0, 1.0], [2.0, 2.0]], converged=[[True, True], [False, False]]), "m")
    assert single.n_lrs == 1 and single.verdict(1) == "inconclusive"
