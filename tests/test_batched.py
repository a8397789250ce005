"""Batched training: each model of ``train_batched`` follows its own ``train`` run, and a
sweep gives the same results with and without batching (and resumes the same way)."""
import pytest
import torch
import xarray as xr

from lrsc import config, store, sweep
from lrsc.datasets import Split
from lrsc.models import build
from lrsc.train import train, train_batched

TRAIN = {"batch_size": 100, "max_steps": 600, "eval_every": 50}
# lr 0.05 hits the step cap, 0.3 and 1.0 converge at different steps, 1e4 diverges at the first check
LRS, SEEDS = [0.05, 0.3, 1.0, 1e4], [0, 1, 2, 3]


def _run(seed: int, lr: float, model_params: dict) -> dict:
    return config.merge(config.DEFAULTS, {"dataset_params": {"n_train": 500, "n_test": 10}, "seed": seed,
                                          "model_params": model_params, "train": {**TRAIN, "lr": lr}})


def _assert_same(single, batched, model_single, model_batched):
    assert (batched.steps, batched.reason, batched.converged, batched.diverged, batched.train_acc) == \
           (single.steps, single.reason, single.converged, single.diverged, single.train_acc)
    torch.testing.assert_close(batched.loss, single.loss, rtol=1e-3, atol=1e-4, equal_nan=True)
    torch.testing.assert_close(batched.bc_loss_ratio, single.bc_loss_ratio, rtol=1e-3, atol=1e-4, equal_nan=True)
    for p, q in zip(model_batched.parameters(), model_single.parameters()):
        # batched matmuls round differently, and 600 SGD steps grow that to about 1e-4
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-3, equal_nan=True)


# bias=False takes the hand-written FCN step, bias=True the generic vmap + autograd step
@pytest.mark.parametrize("bias", [False, True])
def test_each_fcn_follows_its_single_run(bias):
    runs = [_run(seed, lr, {"bias": bias}) for seed, lr in zip(SEEDS, LRS)]
    data = [sweep.load_data(run, torch.device("cpu"))[0] for run in runs]  # one training set per seed
    singles, batched = [], []
    for run, d in zip(runs, data):
        model = sweep.init_model(run, d)
        singles.append((train(model, d, seed=run["seed"], **run["train"]), model))
        batched.append(sweep.init_model(run, d))
    results = train_batched(batched, data, lr=LRS, seed=SEEDS, **TRAIN)
    assert [r.reason for r in results] == ["step cap", "converged", "converged", "non-finite"]
    assert results[1].steps != results[2].steps
    for (single, model), result, model_batched in zip(singles, results, batched):
        _assert_same(single, result, model, model_batched)


def test_each_cnn_follows_its_single_run():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    data = Split(x, y, y.clone(), num_classes=2, num_bias=2)
    lrs, seeds = [0.05, 0.2, 1e5], [0, 1, 2]
    kwargs = {"batch_size": 50, "max_steps": 40, "eval_every": 20}
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(build("cnn", input_shape=(3, 8, 8), num_classes=2, width=1 / 16))
    copies = [build("cnn", input_shape=(3, 8, 8), num_classes=2, width=1 / 16) for _ in seeds]
    for c, net in zip(copies, nets):
        c.load_state_dict(net.state_dict())
    singles = [train(net, data, lr=lr, seed=seed, **kwargs) for net, lr, seed in zip(nets, lrs, seeds)]
    results = train_batched(copies, [data] * 3, lr=lrs, seed=seeds, **kwargs)
    assert results[2].diverged
    for single, result, net, c in zip(singles, results, nets, copies):
        _assert_same(single, result, net, c)


def test_batches_group_only_lr_and_seed():
    cfg = config.load({"grid": {"lr": [0.1, 0.3, 1.0], "seed": [0, 1], "model_params.width": [50, 100]}})
    runs = sweep.expand(cfg)
    groups = sweep.batches(runs, 4)
    assert [len(g) for g in groups] == [4, 2, 4, 2]
    assert all(len({r["model_params"]["width"] for r in g}) == 1 for g in groups)
    assert sorted(map(sweep.run_hash, sum(groups, []))) == sorted(map(sweep.run_hash, runs))
    assert all(len(g) == 1 for g in sweep.batches(runs, 1))
    with_momentum = config.load({"train": {"momentum": 0.9}, "grid": {"lr": [0.1, 0.3]}})
    assert [len(g) for g in sweep.batches(sweep.expand(with_momentum), 32)] == [1, 1]


def test_sweep_same_with_and_without_batching(tmp_path, tiny_parity, monkeypatch):
    # LRs whose runs converge within 240 steps, at different steps; a run that wanders for
    # hundreds of steps without converging grows rounding differences to about 1e-3
    tiny_parity["grid"]["lr"] = [0.5, 1.0, 3.0]
    calls = []
    real = sweep.train_batched
    monkeypatch.setattr(sweep, "train_batched", lambda nets, *a, **k: calls.append(len(nets)) or real(nets, *a, **k))
    batched = sweep.run_sweep(tiny_parity, tmp_path / "batched", device="cpu", progress=False)
    assert calls == [6]
    alone = sweep.run_sweep(tiny_parity, tmp_path / "alone", device="cpu", progress=False, models_at_once=1)
    assert calls == [6]
    assert (batched.reason.values == alone.reason.values).all()
    names = [v for v in store.DEFINITIONS if v != "reason"]
    xr.testing.assert_allclose(batched[names], alone[names], rtol=1e-3, atol=1e-4)


def test_interrupted_batched_sweep_resumes(tmp_path, tiny_parity, monkeypatch):
    real = sweep.run_batch
    calls = []

    def interrupted(runs, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # Ctrl-C during the second batch
        calls.append(runs)
        return real(runs, *args, **kwargs)

    monkeypatch.setattr(sweep, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(tiny_parity, tmp_path / "o", device="cpu", progress=False, models_at_once=2)
    assert len(list((tmp_path / "o" / "runs").glob("*.nc"))) == 2  # the first batch's runs, each in its file

    calls.clear()
    monkeypatch.setattr(sweep, "run_batch", lambda runs, *a, **k: calls.append(runs) or real(runs, *a, **k))
    resumed = sweep.run_sweep(tiny_parity, tmp_path / "o", device="cpu", progress=False, models_at_once=2)
    assert len(calls) == 1 and len(calls[0]) == 2  # only the two unfinished runs
    full = sweep.run_sweep(tiny_parity, tmp_path / "full", device="cpu", progress=False, models_at_once=2)
    xr.testing.assert_identical(full, resumed)
