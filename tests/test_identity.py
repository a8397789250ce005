"""Run identity: a stored run is reused only when its resolved config and the code that made it are
the planned ones. A changed default, dataset code, model code or metric definition shows in
``lrsc status`` with its reason, and the next sweep retrains the run (or recomputes the metric
from its weights); a sweep's saved ``sweep.yaml`` reruns that sweep and trains nothing."""
import math

import pytest
import torch
import xarray as xr
from torch import nn

from conftest import records
from lrsc import collect, datasets, models, sweep, variables, worker
from lrsc.cli import main
from lrsc.datasets import Info, Split


@pytest.fixture(autouse=True)
def _own_registries(monkeypatch):
    """What a test registers goes when it ends: later sweeps of the session compute none of it."""
    for registry in (datasets.REGISTRY, models.REGISTRY, variables.REGISTRY):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


def _check(p: dict) -> Info:
    return Info(p["n_train"], (2,), 2)


def _toy(noise_default: float):
    """A two-feature dataset whose builder's ``noise`` defaults to ``noise_default``."""

    def toy(*, seed: int = 0, noise: float = noise_default, n_train: int = 200, n_test: int = 200):
        g = torch.Generator().manual_seed(seed)

        def split(n: int, biased: bool) -> Split:
            y = torch.randint(2, (n,), generator=g)
            b = y.clone() if biased else torch.randint(2, (n,), generator=g)
            x = torch.stack([y + noise * torch.randn(n, generator=g), b + 0.1 * torch.randn(n, generator=g)], 1)
            return Split(x.float(), y, b, num_classes=2, num_bias=2)

        return split(n_train, True), split(n_test, False)

    return toy


class Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.hidden, self.head = nn.Linear(2, width), nn.Linear(width, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def mlp(*, input_shape: tuple[int, ...], num_classes: int, width: int = 8) -> Mlp:
    return Mlp(width)


def mlp_scaled(*, input_shape: tuple[int, ...], num_classes: int, width: int = 8) -> Mlp:
    model = Mlp(width)  # the same parameters, another initialisation: other code
    with torch.no_grad():
        model.hidden.weight.mul_(2.0)
    return model


def _metric(compute) -> variables.Variable:
    return variables.Variable("mean_margin", "a logit margin statistic over the unbiased test set", "the test set",
                              "logit margin", "model", compute)


def _mean(ev) -> float:
    return (ev.outputs[1][:, 1] - ev.outputs[1][:, 0]).mean().item()


def _median(ev) -> float:
    return (ev.outputs[1][:, 1] - ev.outputs[1][:, 0]).median().item()


CFG = {"title": "identity", "dataset": "toy", "model": "toy_mlp",
       "train": {"batch_size": 50, "max_steps": 100, "eval_every": 50},
       "metrics": {"n_act": 50, "n_attr": 10, "ig_steps": 4, "prune_fractions": [0.5]},
       "grid": {"lr": [0.1, 0.5]}}


@pytest.fixture
def trained(monkeypatch):
    """Every run trained from here on, by hash."""
    seen = []
    real = worker._train_one
    monkeypatch.setattr(worker, "_train_one", lambda store, run, *a: seen.append(run.hash) or real(store, run, *a))
    return seen


def _status(out, capsys) -> str:
    assert main(["status", str(out)]) == 0
    return capsys.readouterr().out


def test_a_changed_default_code_or_definition_is_outdated_and_said_why(tmp_path, capsys, trained):
    datasets.register("toy", check=_check, replace=True)(_toy(0.3))
    models.register("toy_mlp", replace=True)(mlp)
    variables.register(_metric(_mean), replace=True)
    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(CFG, out, device="cpu", progress=False)
    hashes = sorted(records(out))
    assert sorted(trained) == hashes and "outdated       0" in _status(out, capsys)

    # a dataset default changes (0.3 -> 0.6): same hashes, the runs trained under 0.3 are outdated
    datasets.register("toy", check=_check, replace=True)(_toy(0.6))
    shown = _status(out, capsys)
    assert "outdated       2" in shown and "dataset_params.noise: stored 0.3, planned 0.6" in shown
    trained.clear()
    sweep.run_sweep(CFG, out, device="cpu", progress=False)
    assert sorted(trained) == hashes and "outdated       0" in _status(out, capsys)
    assert all(r["config"]["dataset_params"]["noise"] == 0.6 for r in records(out).values())

    # the model's code changes, its parameters do not
    models.register("toy_mlp", replace=True)(mlp_scaled)
    assert "the code of its model 'toy_mlp' has changed since it was stored" in _status(out, capsys)
    trained.clear()
    sweep.run_sweep(CFG, out, device="cpu", progress=False)
    assert sorted(trained) == hashes

    # a metric is redefined (a mean becomes a median): recomputed from the stored weights, never relabelled
    variables.register(_metric(_median), replace=True)
    assert "holds an older definition of mean_margin (recomputed from its stored weights)" in _status(out, capsys)
    left_out = collect.collect(out)  # before the sweep recomputes it: the old values are not shown as medians
    assert left_out.mean_margin.isnull().all() and left_out.test_acc.notnull().all()
    trained.clear()
    ds = sweep.run_sweep(CFG, out, device="cpu", progress=False)
    assert trained == [] and "outdated       0" in _status(out, capsys)
    for lr in CFG["grid"]["lr"]:
        model, run = _trained_model(out, lr)
        test = datasets.build("toy", seed=run["seed"], **run["dataset_params"])[1]
        logits = model(test.x)
        assert math.isclose(float(ds.mean_margin.sel(lr=lr)), (logits[:, 1] - logits[:, 0]).median().item(),
                            rel_tol=1e-6)


def _trained_model(out, lr: float):
    from lrsc import sweepdir
    from lrsc.runs import load_model

    grid = sweepdir.read_grid(out)
    h = grid["hashes"][grid["dims"]["lr"].index(lr)]
    return load_model(grid["store"], h)


def test_a_saved_sweep_yaml_reruns_the_sweep_and_trains_nothing(tmp_path, tiny_parity, capsys, trained,
                                                                monkeypatch):
    tiny_parity["grid"]["dataset_params.rho"] = [0.1, 0.2]
    out = tmp_path / "o" / "sweep"
    ds = sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, models_at_once=1)
    assert len(trained) == 8
    trained.clear()
    for folder in (out, tmp_path / "o" / "again"):  # the same folder, and another beside it
        assert main(["sweep", str(out / "sweep.yaml"), "--out", str(folder), "--device", "cpu"]) == 0
        assert trained == []
        xr.testing.assert_identical(collect.read_results(folder / "results.nc").drop_attrs(), ds.drop_attrs())
    assert (out / "sweep.yaml").read_text() == (tmp_path / "o" / "again" / "sweep.yaml").read_text()


def test_sweep_yaml_keeps_what_was_given_and_grid_json_the_resolved_config(tmp_path, tiny_parity):
    from lrsc import sweepdir

    out = tmp_path / "o" / "sweep"
    sweep.run_sweep(tiny_parity, out, device="cpu", progress=False, overrides=["train.momentum=0"])
    given = sweepdir.read_given(out)
    assert given["train"] == {**tiny_parity["train"], "momentum": 0.0}  # normalised, no default filled in
    assert "encoding" not in given["dataset_params"]
    resolved = sweepdir.read_config(out)
    assert resolved["train"]["record_every"] == 10 and resolved["dataset_params"]["encoding"] == "pm1"
