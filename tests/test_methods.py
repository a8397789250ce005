"""The robust-training methods (JTT, LfF, GroupDRO) and last-layer retraining (DFR): known answers
of their weights and losses on tiny cases, their settings' checks, their path through the
one-model loop, and a sweep with the method as a grid axis."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrsc import datasets, models
from lrsc.datasets import Split
from lrsc.dfr import balanced_rows, fit_l1_logistic, retrained_logits
from lrsc.errors import ConfigError
from lrsc.evaluation import holdout, measure
from lrsc.methods import gce, group_dro_step, jtt_weights, relative_difficulty
from lrsc.settings import TrainSettings
from lrsc.stacked import can_train
from lrsc.sweep import run_sweep
from lrsc.train import train


def test_gce_known_value_and_gradient():
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    p = torch.tensor([0.5, math.exp(-1) / (math.exp(2) + math.exp(-1))])
    loss = gce(logits, y, 0.7)
    torch.testing.assert_close(loss, (1 - p ** 0.7) / 0.7)
    # its gradient is p_y^q times the cross-entropy's
    g_gce = torch.autograd.grad(loss.sum(), logits)[0]
    g_ce = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), logits)[0]
    torch.testing.assert_close(g_gce, p[:, None] ** 0.7 * g_ce)


def test_relative_difficulty_known_values():
    w = relative_difficulty(torch.tensor([3.0, 0.0, 1.0, 0.0]), torch.tensor([1.0, 2.0, 1.0, 0.0]))
    assert w.tolist() == [0.75, 0.0, 0.5, 0.5]  # the last: both losses 0, equal difficulty


def test_group_dro_step_known_answer():
    q = torch.full((4,), 0.25)
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 2])  # group 3 is not in the minibatch
    new_q, loss = group_dro_step(q, losses, groups, eta=0.5)
    means = torch.tensor([2.0, 2.0, 4.0, 0.0])
    expected = torch.exp(0.5 * means) / torch.exp(0.5 * means).sum()
    torch.testing.assert_close(new_q, expected)
    torch.testing.assert_close(loss, (expected * means).sum())
    # the gradient reaches each sample through its group's mean: q_g / n_g
    grad = torch.autograd.grad(loss, losses)[0]
    torch.testing.assert_close(grad, torch.stack([expected[0] / 2, expected[0] / 2, expected[1], expected[2]]))


def test_jtt_weights_match_upsampling():
    errors = torch.tensor([True, False, False, False])
    w = jtt_weights(errors, 5.0)
    assert w.tolist() == [2.5, 0.5, 0.5, 0.5]  # (5, 1, 1, 1) over their mean, 2
    losses = torch.tensor([4.0, 1.0, 2.0, 3.0])
    upsampled = torch.cat([losses[:1].repeat(5), losses[1:]])  # the error repeated 5 times, as JTT upsamples
    torch.testing.assert_close((w * losses).mean(), upsampled.mean())


def test_method_settings_are_checked_and_leave_the_kernel():
    model = models.build("fcn", input_shape=(8,), num_classes=2, width=16)
    assert can_train(model, TrainSettings())
    for method in ("jtt", "lff", "group_dro"):
        s = TrainSettings.from_config({"method": method})
        assert not can_train(model, s) and "method" in s.loop_only()
    with pytest.raises(ConfigError, match="train.jtt_up is jtt's"):
        TrainSettings.from_config({"jtt_up": 5})
    with pytest.raises(ConfigError, match="train.dro_eta is group_dro's"):
        TrainSettings.from_config({"method": "lff", "dro_eta": 0.1})
    with pytest.raises(ConfigError, match="focal loss or ASAM"):
        TrainSettings.from_config({"method": "group_dro", "focal_gamma": 1.0})
    with pytest.raises(ConfigError, match="train.method must be one of"):
        TrainSettings.from_config({"method": "irm"})
    with pytest.raises(ConfigError, match="train.lff_q must be in"):
        TrainSettings.from_config({"method": "lff", "lff_q": 0})


def _setup(seed=0):
    data, _ = datasets.build("parity", seed=seed, n_core=3, n_spu=1, n_noise=4, n_train=300, n_test=10, rho=0.1)
    torch.manual_seed(seed)
    # with biases the FCN trains in the one-model loop under ERM too, so the two can be compared exactly
    return models.build("fcn", input_shape=(8,), num_classes=2, width=16, bias=True), data


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_jtt_without_upweighting_is_erm():
    model, data = _setup()
    twin = models.build("fcn", input_shape=(8,), num_classes=2, width=16, bias=True)
    twin.load_state_dict(model.state_dict())
    common = {"lr": 0.5, "batch_size": 50, "max_steps": 100, "eval_every": 20}
    erm = train(model, data, **common)
    jtt = train(twin, data, method="jtt", jtt_up=1.0, jtt_steps=20, **common)
    assert erm.steps == jtt.steps
    assert all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(twin)))


def test_jtt_upweighting_changes_training():
    model, data = _setup()
    twin = models.build("fcn", input_shape=(8,), num_classes=2, width=16, bias=True)
    twin.load_state_dict(model.state_dict())
    common = {"lr": 0.5, "batch_size": 50, "max_steps": 100, "eval_every": 20}
    train(model, data, **common)
    train(twin, data, method="jtt", jtt_up=20.0, jtt_steps=20, **common)
    assert not all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(twin)))


def test_lff_first_step_is_half_an_erm_step():
    # at the first step the biased model is the run's model, so CE_b = CE_d and every weight W is 1/2
    model, data = _setup()
    twin = models.build("fcn", input_shape=(8,), num_classes=2, width=16, bias=True)
    twin.load_state_dict(model.state_dict())
    one = {"batch_size": 50, "max_steps": 1, "eval_every": 1}
    train(model, data, lr=0.1, **one)
    train(twin, data, lr=0.2, method="lff", **one)
    for a, b in zip(_weights(model), _weights(twin)):
        torch.testing.assert_close(a, b)


def test_group_dro_trains_and_differs_from_erm():
    model, data = _setup()
    twin = models.build("fcn", input_shape=(8,), num_classes=2, width=16, bias=True)
    twin.load_state_dict(model.state_dict())
    common = {"lr": 0.5, "batch_size": 50, "max_steps": 200, "eval_every": 20}
    train(model, data, **common)
    result = train(twin, data, method="group_dro", dro_eta=1.0, **common)
    assert not result.diverged
    assert not all(torch.equal(a, b) for a, b in zip(_weights(model), _weights(twin)))


def test_balanced_rows_cut_every_group_to_the_smallest():
    group = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    rows = balanced_rows(group, 4, torch.Generator().manual_seed(0))
    assert torch.bincount(group[rows], minlength=4).tolist() == [2, 2, 2, 2]
    assert len(set(rows.tolist())) == len(rows)
    assert len(balanced_rows(torch.tensor([0, 1, 1]), 3, torch.Generator())) == 0  # group 2 missing


def test_l1_logistic_meets_its_optimality_conditions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(200, generator=g, dtype=torch.float64) > 0).long()
    c = 0.05
    w, b = fit_l1_logistic(x, y, 2, c)
    # KKT of mean CE + ||W||_1 / (c m): the gradient is -lam sign(w) where w != 0, within lam where w == 0
    lam = 1 / (c * len(x))
    p = (x @ w + b).softmax(1) - F.one_hot(y, 2).double()
    grad_w, grad_b = x.T @ p / len(x), p.mean(0)
    nonzero = w != 0
    assert nonzero.any() and not nonzero.all()  # the penalty zeroes some weights and keeps others
    torch.testing.assert_close(grad_w[nonzero], -lam * w.sign()[nonzero], atol=1e-6, rtol=0)
    assert torch.all(grad_w[~nonzero].abs() <= lam + 1e-6)
    torch.testing.assert_close(grad_b, torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_l1_logistic_strong_penalty_gives_the_class_frequencies():
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.tensor([0] * 30 + [1] * 10)
    w, b = fit_l1_logistic(x, y, 2, c=1e-6)
    assert torch.all(w == 0)
    torch.testing.assert_close(b.softmax(0), torch.tensor([0.75, 0.25], dtype=torch.float64), atol=1e-6, rtol=0)


def _toy(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    b = torch.randint(2, (n,), generator=g)
    x = torch.stack([2 * y - 1 + 0.3 * torch.randn(n, generator=g), torch.randn(n, generator=g)], 1)
    return Split(x.float(), y, b, num_classes=2, num_bias=2)


def test_retraining_recovers_a_feature_the_head_ignores():
    torch.manual_seed(0)
    model = models.build("fcn", input_shape=(2,), num_classes=2, width=64)
    with torch.no_grad():
        model.head.weight.zero_()  # a head that ignores every feature: chance accuracy
    val, test = _toy(400, 1), _toy(400, 2)
    feats = lambda s: models.predict(model, s.x)[0]  # noqa: E731
    logits = retrained_logits(feats(val), val.y, val.group, 4, 2, 1.0, torch.Generator().manual_seed(0), feats(test))
    assert (logits.argmax(1) == test.y).float().mean() > 0.95


def test_holdout_and_the_validation_variables():
    _, test = datasets.build("parity", seed=0, n_core=3, n_spu=1, n_noise=4, n_train=10, n_test=200, rho=0.1)
    rest, val = holdout(test, {"seed": 3, "metrics": {"val_frac": 0.25}})
    assert len(val) == 50 and len(rest) == 150
    whole, none = holdout(test, {"seed": 3, "metrics": {"val_frac": 0.0}})
    assert none is None and whole is test
    torch.manual_seed(0)
    model = models.build("fcn", input_shape=(8,), num_classes=2, width=16)
    names = ("test_acc", "val_acc", "val_worst_group_acc", "dfr_acc", "dfr_worst_group_acc", "dfr_gain")
    with_val = measure(model, test, names, seed=3, val_frac=0.25, n_act=20, n_attr=5)
    assert all(np.isfinite(with_val[n]) for n in names)
    assert with_val["dfr_gain"] == pytest.approx(with_val["dfr_acc"] - with_val["test_acc"])
    # the test variables see only the rest of the test set
    assert with_val["test_acc"] == pytest.approx((models.predict(model, rest.x)[1].argmax(1) == rest.y).float().mean())
    without = measure(model, test, names, seed=3, n_act=20, n_attr=5)
    assert np.isfinite(without["test_acc"]) and all(np.isnan(without[n]) for n in names[1:])


def test_a_sweep_with_the_method_as_a_grid_axis(tmp_path, tiny_parity):
    tiny_parity["grid"] = {"method": ["erm", "jtt", "lff", "group_dro"], "lr": [0.3], "seed": [0, 1]}
    tiny_parity["metrics"]["val_frac"] = 0.3
    ds = run_sweep(tiny_parity, tmp_path / "methods", device="cpu", progress=False)
    assert ds.sizes["method"] == 4 and set(ds.method.values) == {"erm", "jtt", "lff", "group_dro"}
    # every run is a result (LfF's debiased model may collapse onto the anti-spurious rule here: diverged)
    status = ds.status.values.ravel().tolist()
    assert set(status) <= {"done", "diverged"} and status.count("done") >= 6
    assert np.isfinite(ds.val_acc).all() and np.isfinite(ds.dfr_acc).all()
    # each method trains its own model (JTT's identification run fits this training set within its
    # default cap, so it has no errors to upweight and trains as ERM does)
    acc, steps = ds.test_acc.sel(seed=0).values.ravel(), ds.steps.sel(seed=0).values.ravel()  # one per method
    assert len(set(zip(acc.tolist(), steps.tolist()))) > 1
    # the same sweep in two Dask worker processes (each method's loop, JTT's identification run and
    # LfF's second model there), on a store of its own: the same numbers
    elsewhere = run_sweep(tiny_parity, tmp_path / "dask", device="cpu", progress=False, engine="dask", workers=2,
                          store=tmp_path / "dask_store")
    for var in ("status", "test_acc", "steps", "val_acc", "dfr_acc", "prunability"):
        np.testing.assert_array_equal(elsewhere[var].values, ds[var].values, err_msg=var)  # NaN matches NaN
