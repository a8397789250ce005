"""The training loop: convergence, the step cap, divergence, determinism, optimisers, schedules,
the focal loss and the stopping rules."""
import math

import pytest
import torch
import yaml

from lrsc import datasets, models
from lrsc.errors import ConfigError
from lrsc.objective import focal_weight, lr_table
from lrsc.records import RECORDS
from lrsc.settings import TrainSettings
from lrsc.train import train


def _setup(seed=0, **params):
    data, _ = datasets.build("parity", seed=seed, n_core=3, n_spu=1, n_noise=4, n_train=300, n_test=10, **params)
    torch.manual_seed(seed)
    return models.build("fcn", input_shape=(8,), num_classes=2, width=32), data


def test_converges_to_full_training_accuracy():
    model, data = _setup()
    result = train(model, data, lr=1.0, batch_size=50, max_steps=2000, eval_every=20)
    assert result.converged and not result.diverged and result.reason == "converged"
    assert result.train_acc == 1.0 and result.steps % 20 == 0 and result.steps < 2000
    loss, ratio = result.records["loss"], result.records["bc_loss_ratio"]
    assert loss.shape == ratio.shape == (result.steps // 10,)  # a record every 10 steps
    assert torch.all((ratio >= 0) & (ratio <= 1))


def test_step_cap_is_not_convergence():
    model, data = _setup()
    result = train(model, data, lr=1e-4, batch_size=50, max_steps=60, eval_every=20)
    assert result.steps == 60 and not result.converged and not result.diverged and result.reason == "step cap"


def test_non_finite_loss_is_recorded_as_divergence():
    model, data = _setup()
    result = train(model, data, lr=1e6, batch_size=50, max_steps=400, eval_every=20)
    assert result.diverged and not result.converged and result.reason in ("non-finite", "dead network", "collapse")


def test_dead_network_is_divergence():
    model, data = _setup()
    with torch.no_grad():
        model.hidden[1].weight.fill_(-1.0)  # hidden ReLUs of layer 2 see only negative input from ReLU outputs
    result = train(model, data, lr=0.1, batch_size=50, max_steps=400, eval_every=20)
    assert result.diverged and result.reason == "dead network" and result.steps == 20


def test_same_seed_same_numbers():
    runs = []
    for _ in range(2):
        model, data = _setup(seed=5)
        runs.append((train(model, data, lr=0.5, batch_size=50, max_steps=200, eval_every=20, seed=5), model))
    (a, ma), (b, mb) = runs
    for k in RECORDS:
        torch.testing.assert_close(a.records[k], b.records[k], rtol=0, atol=0, equal_nan=True)
    assert a.steps == b.steps
    assert all(torch.equal(p, q) for p, q in zip(ma.parameters(), mb.parameters()))


def _table(steps: int, **settings) -> torch.Tensor:
    return lr_table(TrainSettings.from_config(settings), steps)


def test_lr_schedules_known_values():
    assert _table(4, lr=0.5).tolist() == [0.5] * 4
    assert torch.allclose(_table(6, lr=1.0, schedule="step", schedule_factor=0.1, schedule_at=3),
                          torch.tensor([1, 1, 1, 0.1, 0.1, 0.1]))
    # cosine from 1 to 0.1 over 4 steps, then held: 0.1 + 0.9 (1 + cos(pi t / 4)) / 2
    expected = [0.1 + 0.45 * (1 + math.cos(math.pi * t / 4)) for t in range(5)] + [0.1]
    assert torch.allclose(_table(6, lr=1.0, schedule="cosine", schedule_steps=4, schedule_factor=0.1),
                          torch.tensor(expected))
    wsd = _table(12, lr=2.0, schedule="wsd", schedule_steps=10, schedule_factor=0.0, warmup_steps=2, decay_frac=0.3)
    assert torch.allclose(wsd[:8], torch.tensor([0.0, 1.0, 2, 2, 2, 2, 2, 2]))  # linear warmup, then stable
    assert wsd[7] > wsd[8] > wsd[9] > wsd[10] == wsd[11] == 0  # decays to the end value and holds it
    # 0 schedule steps means the step cap
    assert torch.equal(_table(6, lr=1.0, schedule="cosine", schedule_factor=0.0, max_steps=4)[4:], torch.zeros(2))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_weight_gives_the_focal_loss_gradient(gamma):
    logits = torch.randn(1, 20, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (1, 20), generator=torch.Generator().manual_seed(1))
    logp = logits.log_softmax(-1)
    p = logp.gather(-1, y[..., None]).exp().squeeze(-1)
    focal = (1 - p) ** gamma * -logp.gather(-1, y[..., None]).squeeze(-1)
    (grad,) = torch.autograd.grad(focal.sum(), logits)
    ce_grad = logp.exp() - torch.nn.functional.one_hot(y, 5)
    weight = focal_weight(logp.detach(), y, torch.tensor([gamma], dtype=torch.float64))
    torch.testing.assert_close(weight[..., None] * ce_grad.detach(), grad)
    if gamma == 0:
        assert torch.equal(weight, torch.ones_like(weight))


@pytest.mark.parametrize("settings", [{"optimizer": "adam", "lr": 0.01}, {"optimizer": "adamw", "lr": 0.01,
                                      "weight_decay": 0.01, "schedule": "cosine", "schedule_steps": 400},
                                      {"optimizer": "psgd_kron", "lr": 0.003, "schedule": "wsd", "warmup_steps": 20},
                                      {"lr": 1.0, "asam_rho": 0.5, "momentum": 0.5}], ids=lambda s: str(s.get("optimizer", "asam")))
def test_other_optimisers_train_and_repeat(settings):
    """Adam, AdamW, PSGD-Kron and ASAM fit the data, and a seed gives the same numbers whatever
    the global random state (PSGD-Kron draws from it)."""
    runs = []
    for state in (1, 2):
        model, data = _setup()
        torch.manual_seed(state)
        result = train(model, data, batch_size=50, max_steps=400, eval_every=20, **settings)
        runs.append((result, torch.cat([p.flatten() for p in model.parameters()])))
    (result, weights), (again, weights_again) = runs
    assert result.converged and result.steps == again.steps
    assert torch.equal(weights, weights_again)
    if settings.get("asam_rho"):  # ASAM's two passes differ from plain SGD's one
        model, data = _setup()
        sgd = train(model, data, batch_size=50, max_steps=400, eval_every=20, lr=1.0, momentum=0.5)
        assert not torch.equal(torch.cat([p.flatten() for p in model.parameters()]), weights)


def test_stop_at_a_loss_threshold_and_extra_steps():
    model, data = _setup()
    by_loss = train(model, data, lr=1.0, batch_size=50, max_steps=2000, eval_every=20, stop_loss=0.3)
    model, data = _setup()
    by_acc = train(model, data, lr=1.0, batch_size=50, max_steps=2000, eval_every=20)
    assert by_loss.converged and by_loss.steps < by_acc.steps  # a loose threshold is met before 100% accuracy
    model, data = _setup()
    longer = train(model, data, lr=1.0, batch_size=50, max_steps=2000, eval_every=20, extra_steps=35)
    assert longer.converged and longer.fit_step == by_acc.steps and longer.steps == by_acc.steps + 35
    assert longer.records["loss"].shape == (longer.steps // 10,)
    assert longer.records["loss"][-1] < by_acc.records["loss"][-1]  # training on lowers the loss


def _moon_cnn(seed=0):
    data, _ = datasets.build("moon_star", seed=seed, rho=0.1, image_size=16, n_train=200, n_test=10)
    torch.manual_seed(seed)
    return models.build("cnn", input_shape=tuple(data.x.shape[1:]), num_classes=data.num_classes, width=0.125), data


@pytest.mark.parametrize("values,message", [
    ({"precision": "fp8"}, "train.precision must be one of fp32, bf16, fp16, got 'fp8'"),
    ({"precision": "fp16", "asam_rho": 0.1}, "train.precision=fp16 does not combine with ASAM"),
])
def test_bad_precision_settings_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainSettings.from_config(values)


def test_bf16_trains_a_cnn_on_the_cpu_with_float32_weights():
    """bf16 autocasts the training steps: the convolutions compute in bfloat16, the weights and
    the stopping checks stay float32, and the run learns as the fp32 one does, to other numbers."""
    seen = set()
    results = {}
    for precision in ("fp32", "bf16"):
        model, data = _moon_cnn()
        hook = model.convs[0].register_forward_hook(lambda m, i, out: seen.add((precision, m.training, out.dtype)))
        results[precision] = (train(model, data, lr=0.05, batch_size=50, max_steps=200, eval_every=20,
                                    precision=precision), torch.cat([p.flatten() for p in model.parameters()]))
        hook.remove()
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {("fp32", True, torch.float32), ("fp32", False, torch.float32),
                    ("bf16", True, torch.bfloat16), ("bf16", False, torch.float32)}  # evaluation: fp32
    (fp32, w32), (bf16, w16) = results["fp32"], results["bf16"]
    assert bf16.records["loss"][-1] < 0.5 * bf16.records["loss"][0] and bf16.train_acc >= 0.8
    assert not torch.equal(w16, w32) and bf16.records["loss"].dtype == torch.float32


def test_settings_the_batched_kernel_lacks_route_to_the_one_model_loop(monkeypatch):
    import lrsc.train
    from lrsc.stacked import can_train, train_batched

    model, data = _setup()
    assert can_train(model, TrainSettings()) and not can_train(model, TrainSettings(precision="bf16"))
    assert TrainSettings(precision="bf16", optimizer="adam").loop_only() == ("optimizer", "precision")
    with pytest.raises(ValueError, match="train_batched implements train.precision at the default only"):
        train_batched([model], [data], [TrainSettings(precision="bf16")], seed=[0])

    def no_kernel(*args, **kwargs):
        raise AssertionError("a bf16 run went to the batched kernel")

    monkeypatch.setattr(lrsc.train, "train_batched", no_kernel)
    result = train(model, data, lr=1.0, batch_size=50, max_steps=200, eval_every=20, precision="bf16")
    assert result.steps > 0


def test_fp16_needs_cuda(tmp_path, tiny_parity, capsys):
    from lrsc.cli import main

    model, data = _setup()
    with pytest.raises(ConfigError, match="train.precision=fp16 needs a CUDA device, and this run trains on cpu"):
        train(model, data, precision="fp16")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**tiny_parity, "train": {**tiny_parity["train"], "precision": "fp16"}}))
    assert main(["sweep", str(params), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2  # known at plan time
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.precision=fp16 needs a CUDA device" in err[0] and not (tmp_path / "o").exists()


def test_fp32_is_the_run_without_the_setting(tiny_parity):
    """The default adds nothing to a run's hash: the tiny sweep's runs keep the hashes they had
    before the precision setting existed (so every stored run is still found), and naming fp32
    is the same run."""
    from lrsc import plan

    before = ["c399f9a48c3e64e7", "cb9c2696e55a7963", "d0152621cc6aca24", "7c04925fbd3c3caf"]
    assert [r.hash for r in plan.plan(tiny_parity)[1]] == before
    tiny_parity["train"]["precision"] = "fp32"
    assert [r.hash for r in plan.plan(tiny_parity)[1]] == before
