"""The baselines chapter's claims on stored sweeps: each method's LR selected on validation (worst-group
validation for GroupDRO), ERM compared with each method at its default and at its selected LR, the
method x LR interaction, and DFR's gain with the LR, each with a hand-computed answer."""
import json

import numpy as np
import pytest
import xarray as xr

from lrsc import baselines, claims, report, variables

LRS = [0.01, 0.03, 0.1, 0.3]
SEEDS = [0, 1, 2]
NOISE = np.array([0.0, 0.004, -0.004])  # per seed: a spread, so that intervals have a width
VARS = ("test_acc", "worst_group_acc", "prunability", "val_acc", "val_worst_group_acc", "dfr_gain", "chance_acc")


def _sweep(method: str, acc, val=None, val_wga=None, gain=None) -> xr.Dataset:
    """A stored method sweep: each variable's per-LR values (seed noise added), every run compared."""
    def grid(per_lr):
        return np.asarray(per_lr, float)[:, None] + NOISE[None, :]

    acc = grid(acc)
    values = {"test_acc": acc, "worst_group_acc": acc - 0.1, "prunability": acc - 0.3,
              "val_acc": grid(val if val is not None else np.asarray(acc).mean(1)),
              "val_worst_group_acc": grid(val_wga if val_wga is not None else np.asarray(acc).mean(1) - 0.1),
              "dfr_gain": grid(gain if gain is not None else [0.0] * len(LRS)), "chance_acc": np.full(acc.shape, 0.5)}
    dims = ("lr", "seed")
    config = {"dataset": "parity", "dataset_params": {"rho": 0.05}, "model": "fcn", "model_params": {"width": 8},
              "train": {"method": method}}
    ds = xr.Dataset({**{k: (dims, v) for k, v in values.items()},
                     "converged": (dims, np.ones(acc.shape, bool)), "diverged": (dims, np.zeros(acc.shape, bool))},
                    coords={"lr": LRS, "seed": SEEDS}, attrs={"title": f"toy: {method}", "config": json.dumps(config)})
    for var in VARS:
        ds[var].attrs.update(variables.get(var).attrs())
    return ds


def _store(root, folder, ds):
    (root / folder).mkdir(parents=True)
    ds.to_netcdf(root / folder / "results.nc")


@pytest.fixture
def table(tmp_path):
    erm = _sweep("erm", [0.60, 0.70, 0.80, 0.90], gain=[0.10, 0.08, 0.04, 0.01])
    jtt = _sweep("jtt", [0.75, 0.755, 0.75, 0.745])  # flat within a point; its validation picks LR 0.03
    # GroupDRO: unbiased validation would pick LR 0.01, worst-group validation picks 0.3
    dro = _sweep("group_dro", [0.85, 0.80, 0.86, 0.95], val=[0.9, 0.8, 0.7, 0.6], val_wga=[0.1, 0.2, 0.3, 0.4])
    for folder, ds in (("erm", erm), ("jtt", jtt), ("dro", dro)):
        _store(tmp_path, folder, ds)
    claims.record(tmp_path, "baselines", {"erm": ["erm"], "methods": ["jtt", "dro"]})
    return claims.ledger(tmp_path, chapter="baselines"), {"erm": erm, "jtt": jtt, "dro": dro}


def test_selection_uses_validation_and_worst_group_for_group_dro(table):
    _, sweeps = table
    assert baselines.selected_lr(sweeps["erm"]) == 0.3
    assert baselines.selected_lr(sweeps["jtt"]) == 0.03
    assert baselines.selected_lr(sweeps["dro"]) == 0.3  # on worst-group validation, not the unbiased one
    assert baselines.default_lr(sweeps["dro"]) == 0.01
    shown = baselines.selection_table(list(sweeps.values()))
    assert shown.loc["GroupDRO", ("LR", "selected on")] == "validation worst-group accuracy"
    assert shown.loc["JTT", ("acc. (%)", "selected LR")] == pytest.approx(75.5)


def test_erm_against_each_method(table):
    rows, _ = table
    # ERM at 0.3 (90%) against JTT at its default LR 0.01 (75%): +15 points, every seed alike
    r = rows.loc["base.default.acc/jtt"]
    assert r.verdict == "agrees" and r.effect == pytest.approx(15.0) and r.source == "book" and r.setting == "JTT"
    assert "ERM at LR 0.3 (selected on validation)" in r.statement and "LR 0.01" in r.statement
    assert rows.loc["base.selected.acc/jtt", "effect"] == pytest.approx(14.5)  # JTT at 0.03
    # GroupDRO at its default LR 0.01 (85%) is behind ERM; at its selected LR 0.3 (95%) it is ahead
    assert rows.loc["base.default.acc/dro", "verdict"] == "agrees"
    assert rows.loc["base.selected.acc/dro", "verdict"] == "disagrees"
    assert rows.loc["base.selected.acc/dro", "effect"] == pytest.approx(-5.0)
    assert rows.loc["base.default.prune/jtt", "effect"] == pytest.approx(0.15)  # prunability is shown unscaled
    # the book's own statements are not worded as the paper's
    assert report.says(rows, "base.default.acc", "jtt").endswith("as the statement says")
    assert report.says(rows, "base.lr.acc", "jtt").endswith("so the stated effect is absent here")


def test_interaction_and_dfr(table):
    rows, _ = table
    # from LR 0.01 to 0.3: ERM +30 points, JTT -0.5 points: a difference of -30.5 points
    r = rows.loc["base.interaction.acc/jtt"]
    assert r.verdict == "agrees" and r.effect == pytest.approx(-30.5) and r.claimed == "changes"
    assert rows.loc["base.lr.acc/jtt", "verdict"] == "no effect"  # flat within a point
    # DFR's gain falls with the LR here (upper half 2.5 points, lower half 9): against the statement
    assert rows.loc["base.dfr/erm", "verdict"] == "disagrees"
    assert rows.loc["base.dfr/erm", "effect"] == pytest.approx(-6.5)
    assert "base.default.acc/erm" not in rows.index  # ERM is what the methods are compared with, not one of them
