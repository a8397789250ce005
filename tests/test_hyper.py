"""Hyperparameter comparisons (Tab. 2, the "gets both" verdict) and model soups."""
import json

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from conftest import run_store
from lrsc import claims, hyper, paper, report, soup, variables
from lrsc.chapter import Chapter
from lrsc.evaluation import evaluate
from lrsc.mechanism import load_model
from lrsc.runs import load_data
from lrsc.sweep import run_sweep


def _sweep(axis: str, values: list, acc: list, prun: list) -> xr.Dataset:
    """A collected two-seed sweep over ``axis`` whose seed means are ``acc`` and ``prun``; the
    last value did not converge in one seed."""
    shape = (len(values), 2)
    spread = np.array([-0.001, 0.001])
    converged = np.ones(shape, bool)
    converged[-1, 0] = False
    return xr.Dataset({"test_acc": ((axis, "seed"), np.array(acc)[:, None] + spread),
                       "prunability": ((axis, "seed"), np.array(prun)[:, None] + spread),
                       "csi": ((axis, "seed"), np.zeros(shape)),
                       "converged": ((axis, "seed"), converged),
                       "diverged": ((axis, "seed"), np.zeros(shape, bool))},
                      coords={axis: values, "seed": [0, 1]}).assign(
        test_acc=lambda d: d.test_acc.assign_attrs(variables.get("test_acc").attrs()))


def test_ranges_and_effects_known_answers():
    results = {"lr": _sweep("lr", [0.1, 0.2, 0.4, 0.8, 1.6], [0.6, 0.7, 0.8, 0.9, 0.1], [0.5, 0.6, 0.7, 0.8, 0.0]),
               # a smaller batch acts as a larger LR: accuracy rises as the batch shrinks, prunability falls
               "batch_size": _sweep("batch_size", [100, 50, 25, 10, 5], [0.6, 0.65, 0.7, 0.75, 0.0],
                                    [0.8, 0.7, 0.6, 0.5, 0.0])}
    table = hyper.ranges_table(results, "mnist_cifar", ("test_acc", "prunability"))
    row = table.loc["learning rate"]
    assert row[("range", "ours")] == "0.1 – 0.8"  # the unconverged LR 1.6 is not compared
    assert row[("test_acc", "min")] == pytest.approx(60) and row[("test_acc", "max")] == pytest.approx(90)
    assert row[("prunability", "max")] == pytest.approx(0.8)  # each min and max on its own
    assert (row[("test_acc", "paper min")], row[("test_acc", "paper max")]) == paper.TAB2["mnist_cifar"]["lr"][1]
    assert table.loc["batch size", ("range", "ours")] == "10 – 100"
    # shown to readers: the variables by their headers, the rest untouched
    shown = report.with_headers(table, results["lr"])
    assert shown.loc["learning rate", ("acc. (%)", "min")] == row[("test_acc", "min")]
    assert ("prunability", "max") in shown.columns and ("range", "ours") in shown.columns  # no header stored


def test_settings_table_prints_numbers_as_written():
    ds = _sweep("lr", [0.1, 0.2], [0.6, 0.7], [0.5, 0.6]).assign_attrs(config=json.dumps({
        "dataset": "parity", "model": "cnn", "dataset_params": {"rho": 0.05}, "model_params": {"width": 0.125},
        "train": {"optimizer": "sgd", "batch_size": 100, "max_steps": 500}}))
    row = report.settings_table({"s": ds}).loc["s"]
    assert (row["rho"], row["width"], row["n_train"], row["LRs"], row["seeds"]) == ("0.05", "0.125", "all", "0.1, 0.2", 2)
    assert report.settings_table({"s": ds.assign_attrs(config=ds.attrs["config"].replace("0.125", "128"))}).loc[
        "s", "width"] == "128"


def test_soup_of_a_model_with_itself_is_the_model(tmp_path, tiny_parity):
    state = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(7)}
    other = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    averaged = soup.average([state, other])
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0])) and averaged["n"] == 7

    ds = run_sweep(tiny_parity, tmp_path / "s", device="cpu", progress=False)
    soups = soup.pair_soups(tmp_path / "s", names=("test_acc", "prunability"))
    assert set(soups.seed.values.tolist()) == {0, 1}
    assert soups.test_acc.dims == ("lr_a", "lr_b", "seed")
    # the diagonal is each stored model alone, evaluated again
    np.testing.assert_allclose(np.diagonal(soups.test_acc.values).T, ds.test_acc.values)
    np.testing.assert_allclose(soups.test_acc.values, soups.test_acc.values.transpose(1, 0, 2))
    # an off-diagonal cell is the average of the two stored models
    model, run = load_model(tmp_path / "s", lr=0.3, seed=0)
    other_model, _ = load_model(tmp_path / "s", lr=1.0, seed=0)
    model.load_state_dict(soup.average([model.state_dict(), other_model.state_dict()]))
    expected = evaluate(run, model, load_data(run)[1], None, ("test_acc",))["test_acc"]
    assert soups.test_acc.sel(lr_a=0.3, lr_b=1.0, seed=0).item() == pytest.approx(float(expected))


def test_soups_refuse_a_sweep_over_other_settings(tmp_path, tiny_parity):
    tiny_parity["grid"] = {"lr": [0.3], "seed": [0], "momentum": [0.0, 0.5]}
    run_sweep(tiny_parity, tmp_path / "m", device="cpu", progress=False)
    with pytest.raises(ValueError, match="sweeps lr, seed, momentum"):
        soup.pair_soups(tmp_path / "m")


def test_a_chapter_sweeps_each_hyperparameter_at_one_lr(tmp_path, tiny_parity):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(tiny_parity))
    ch = Chapter("fig6_hyperparameters", tmp_path / "out")
    results = {"lr": ch.sweep("lr", params)}
    for key, values in {"l1": [0.0, 1e-4], "focal_gamma": [0.0, 2.0]}.items():
        results[key] = ch.sweep("hp", params, folder=f"hp_{key}", title_=f"tiny: {hyper.name(key)} at LR 0.3",
                                changes=hyper.changes(key, values, 0.3)).isel(lr=0)
    assert set(results["l1"].test_acc.dims) == {"seed", "l1"}
    assert float(results["l1"].lr) == 0.3
    # the plain point of every sweep is the LR sweep's run at that LR: the same stored run, trained once
    np.testing.assert_array_equal(results["l1"].test_acc.sel(l1=0.0).values,
                                  results["lr"].test_acc.sel(lr=0.3).values)
    assert (tmp_path / "out" / "hp_focal_gamma" / "results.nc").is_file()
    assert len(list(run_store(tmp_path / "out" / "p").root.glob("*.nc"))) == 4 + 2 + 2  # 8 runs, not 12
    assert results["l1"].attrs["title"].endswith("L1 at LR 0.3")
    # the roles its claims are judged on are recorded as it runs them
    assert claims.roles(tmp_path / "out", "fig6_hyperparameters") == {"lr": ["p"], "hp": ["hp_l1", "hp_focal_gamma"]}
    assert set(ch.table.claim) == {"fig6.lr", "fig6.others"}


def test_tab2_says_when_another_datasets_rows_stand_in():
    assert hyper.paper_rows("mnist_cifar") == "MNIST-CIFAR"
    assert "has no parity rows; Colored MNIST's stand in" in hyper.paper_rows("parity")
