"""The paper's LR protocol: probing a ladder of LRs up to the edge of stability (known answers on
made-up probes, then a real tiny sweep), and the step cap that grows as 1/LR below cap_lr."""
import numpy as np
import pytest
import torch
import xarray as xr

from conftest import records
from lrsc import edge, report
from lrsc.errors import ConfigError
from lrsc.settings import TrainSettings
from lrsc.stacked import train_batched
from lrsc.sweep import run_sweep


def _probe(acc: list[float], diverged: list[bool], chance: float = 0.5) -> xr.Dataset:
    """A collected one-LR sweep of len(acc) seeds."""
    seeds = list(range(len(acc)))
    return xr.Dataset({"test_acc": (("seed",), np.where(diverged, np.nan, acc)),
                       "diverged": (("seed",), np.asarray(diverged)),
                       "chance_acc": (("seed",), np.full(len(acc), chance))}, coords={"seed": seeds})


def _cfg(**lr) -> dict:
    return {"grid": {"lr": {"edge": True, **lr}, "seed": [0, 1]}, "title": "t"}


def test_the_spec_is_checked_and_names_what_is_wrong():
    spec = edge.EdgeSpec.from_config({"edge": True, "start": 0.1, "span": 32, "n": 6})
    assert spec.factor == pytest.approx(2.0) and spec.lr(-3) == 0.0125 and spec.lr(2) == 0.4
    for bad, says in (({"start": 0.1}, "edge: true"), ({"edge": True}, "needs start"),
                      ({"edge": True, "start": -1}, "start must be a number positive"),
                      ({"edge": True, "start": 0.1, "factor": 1}, "factor must be a number above 1"),
                      ({"edge": True, "start": 0.1, "n": 1.5}, "n must be an integer"),
                      ({"edge": True, "start": 0.1, "factor": 2, "span": 8}, "factor or span, not both"),
                      ({"edge": True, "start": 0.1, "steps": 3}, "unknown key grid.lr.steps")):
        with pytest.raises(ConfigError, match=says):
            edge.EdgeSpec.from_config(bad)


def test_probing_up_to_the_first_unstable_lr():
    seen = []

    def train_at(lr: float) -> xr.Dataset:  # every seed fine up to LR 2, one seed diverges from LR 4
        seen.append(lr)
        return _probe([0.8, 0.82], [False, lr >= 4])

    out = edge.resolve(_cfg(start=0.5, factor=2, n=4), train_at)
    assert seen == [0.5, 1.0, 2.0, 4.0]  # upwards from start, one LR at a time
    assert out["grid"]["lr"] == [0.25, 0.5, 1.0, 2.0, 4.0]  # n LRs up to the edge, then the unstable one
    assert out["edge"]["edge"] == 2.0 and out["edge"]["unstable"] == 4.0
    assert [p["diverged"] for p in out["edge"]["probes"]] == [0, 0, 0, 1]


def test_a_drastic_loss_without_divergence_is_unstable_and_a_bad_start_walks_down():
    def train_at(lr: float) -> xr.Dataset:
        # above-chance accuracy 0.3 at best; at LR 1 one seed keeps 0.05 of it (less than half): a drastic loss
        return _probe([0.8, 0.8] if lr < 1 else [0.8, 0.55], [False, False])

    out = edge.resolve(_cfg(start=2.0, factor=2, n=2), train_at)
    assert out["edge"]["edge"] == 0.5 and out["edge"]["unstable"] == 1.0 and out["grid"]["lr"] == [0.25, 0.5, 1.0]


def test_no_edge_within_the_probes_is_said_and_no_stable_lr_is_an_error():
    out = edge.resolve(_cfg(start=1.0, factor=2, n=2, probes=3), lambda lr: _probe([0.9, 0.9], [False, False]))
    assert out["edge"]["unstable"] is None and out["grid"]["lr"] == [2.0, 4.0]
    with pytest.raises(ConfigError, match="every probed LR .* is unstable; lower grid.lr.start"):
        edge.resolve(_cfg(start=1.0, n=2, probes=3), lambda lr: _probe([0.9, 0.9], [True, False]))


def test_a_tiny_sweep_to_its_edge_keeps_its_diverged_lr(tmp_path, tiny_parity):
    tiny_parity["grid"]["lr"] = {"edge": True, "start": 1.0, "factor": 8, "n": 2}
    tiny_parity["train"]["cap_lr"] = 1.0
    ds = run_sweep(tiny_parity, tmp_path / "s", device="cpu", progress=False)
    top = float(ds.lr.max())
    assert ds.lr.values.tolist() == [0.125, 1.0, 8.0] and bool(ds.diverged.sel(lr=top).any())
    assert (tmp_path / "s" / "probe" / "lr_8" / "results.nc").is_file()  # what the probe ran is kept
    assert set(ds.status.sel(lr=top).values.tolist()) <= {"done", "diverged"}  # a result, not a failure
    before = {h: r["provenance"]["finished"] for h, r in records(tmp_path / "s").items()}
    again = run_sweep(tiny_parity, tmp_path / "s", device="cpu", progress=False)
    assert {h: r["provenance"]["finished"] for h, r in records(tmp_path / "s").items()} == before  # nothing retrained
    assert again.lr.values.tolist() == ds.lr.values.tolist()
    said = report.lr_protocol(ds)  # what a page says the sweep ran
    assert said.startswith("Compared LRs 0.125 to 1 (8× span); the paper's Tab. 1 row spans 0.01 to 0.75 (75×)")
    assert "up to the edge of stability, LR 1; at LR 8, " in said and "(shown, not compared)" in said
    assert "step cap 400 at LR 1 and above, growing as 1/LR below it (3200 at LR 0.125)" in said
    assert report.compared_ends(ds) == [0.125, 1.0] and report.compared_ends(ds, span=4) == [0.125, 1.0]


def test_the_step_cap_grows_as_one_over_the_lr_and_a_stack_keeps_each_models_own():
    assert TrainSettings(lr=0.05, max_steps=100, cap_lr=0.4).step_cap == 800
    assert TrainSettings(lr=0.8, max_steps=100, cap_lr=0.4).step_cap == 100
    assert TrainSettings(lr=0.05, max_steps=100).step_cap == 100
    from lrsc.datasets import build
    from lrsc.models import build as model
    train_set, _ = build("parity", n_core=3, n_spu=1, n_noise=4, rho=0.1, n_train=200, n_test=100)
    settings = [TrainSettings(lr=lr, max_steps=20, cap_lr=0.4, eval_every=10, batch_size=50) for lr in (0.1, 0.4)]

    def fresh():
        torch.manual_seed(0)
        return model("fcn", input_shape=(8,), num_classes=2, width=16)

    together = train_batched([fresh(), fresh()], [train_set] * 2, settings, seed=[0, 0])
    alone = [train_batched([fresh()], [train_set], [s], seed=[0])[0] for s in settings]
    assert [r.steps for r in together] == [r.steps for r in alone] == [80, 20]  # at the cap: 20 x 0.4 / 0.1 and 20
