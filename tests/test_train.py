"""The SGD loop: convergence, the step cap, divergence, determinism."""
import torch

from lrsc import datasets, models
from lrsc.train import RECORDS, train


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
