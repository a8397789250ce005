"""Known-answer tests for every metric of SPEC §4."""
import math

import pytest
import torch

from lrsc import metrics, models, prune
from lrsc.attribution import integrated_gradients, region_shares
from lrsc.train import bc_loss_ratio


def test_accuracy_from_ids_and_logits():
    y = torch.tensor([0, 1, 0, 0])
    assert metrics.accuracy(torch.tensor([0, 1, 1, 0]), y) == 0.75
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [0.0, 1.0], [5.0, -1.0]])
    assert metrics.accuracy(logits, y) == 0.75


def test_worst_group_accuracy():
    y = torch.tensor([0, 0, 1, 1, 1])
    pred = torch.tensor([0, 0, 1, 0, 1])
    group = torch.tensor([0, 0, 1, 1, 2])  # group 1 holds one right and one wrong
    assert metrics.group_accuracies(pred, y, group) == {0: 1.0, 1: 0.5, 2: 1.0}
    assert metrics.worst_group_accuracy(pred, y, group) == 0.5


def test_sparsity():
    assert metrics.sparsity(torch.tensor([0.0, 1.0, 0.0, -2.0])).item() == 0.5
    assert metrics.sparsity(torch.tensor([[0.0, 0.0], [1.0, 2.0]])).tolist() == [1.0, 0.0]


def test_q_compressibility_known_answers():
    x = torch.tensor([3.0, -4.0, 0.0, 0.0])
    # q=0.25 keeps k=1 entry (-4); the residual (3,0,0,0) has norm 3 of ||x|| = 5.
    assert metrics.q_compressibility(x, 0.25).item() == pytest.approx(0.4)
    assert metrics.q_compressibility(x, 0.5).item() == pytest.approx(1.0)
    # k = ceil(q d): d=10, q=0.15 keeps 2 entries.
    v = torch.arange(1.0, 11.0)
    expected = 1 - math.sqrt(sum(i * i for i in range(1, 9))) / math.sqrt(sum(i * i for i in range(1, 11)))
    assert metrics.q_compressibility(v, 0.15).item() == pytest.approx(expected, rel=1e-6)
    assert math.isnan(metrics.q_compressibility(torch.zeros(4), 0.5).item())


def test_pq_index_known_answers():
    assert metrics.pq_index(torch.tensor([5.0, 0.0, 0.0, 0.0])).item() == pytest.approx(0.5)  # 1 - 1/sqrt(4)
    assert metrics.pq_index(torch.tensor([1.0, -1.0, 1.0, -1.0])).item() == pytest.approx(0.0)
    assert metrics.pq_index(torch.tensor([[3.0, 4.0]])).tolist() == pytest.approx([1 - 7 / (math.sqrt(2) * 5)], abs=1e-6)


def _hand_fcn() -> torch.nn.Module:
    """Hidden neuron 0 (L1 norm 1) carries class 0, neuron 1 (L1 norm 0.1) carries class 1."""
    model = models.build("fcn", input_shape=(2,), num_classes=2, depth=1, width=2)
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.1]]))
        model.head.weight.copy_(torch.eye(2))
    return model


def test_prunability_by_hand():
    model = _hand_fcn()
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    # q=0.1 prunes round(0.2)=0 neurons: P=1. q=0.5 prunes the weaker neuron 1, so the
    # class-1 input gives logits (0, 0) -> class 0: accuracy 1/2, P=0.5.
    mean, ratios = metrics.prunability(model, x, y, [0.1, 0.5])
    assert ratios == [1.0, 0.5]
    assert mean == 0.75


def test_pruning_zero_changes_nothing_and_pruned_units_are_exactly_zero():
    torch.manual_seed(0)
    model = models.build("fcn", input_shape=(8,), num_classes=3, depth=2, width=16)
    x = torch.randn(64, 8)
    assert torch.equal(prune.prune_structured(model, 0.0)(x), model(x))
    assert torch.equal(prune.prune_magnitude(model, 0.0)(x), model(x))
    pruned = prune.prune_structured(model, 0.5)
    h = torch.relu(pruned.hidden[0](x))
    dead = pruned.hidden[0].weight.abs().sum(1) == 0
    assert dead.sum() == 8 and torch.all(h[:, dead] == 0)
    # The pruned neurons are those of smallest L1 norm in the original model.
    norms = model.hidden[0].weight.abs().sum(1)
    assert norms[dead].max() <= norms[~dead].min()
    assert torch.equal(pruned.head.weight, model.head.weight)  # the output layer is never pruned
    w = prune.prune_magnitude(model, 0.25).hidden[1].weight
    assert (w == 0).sum() == round(0.25 * w.numel())


def test_bc_loss_ratio():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert bc_loss_ratio(losses, torch.tensor([False, True, False, True])).item() == pytest.approx(0.6)
    assert bc_loss_ratio(losses, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_region_shares_and_ig_completeness():
    attr = torch.tensor([[1.0, -3.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]])
    regions = {"core": torch.tensor([True, False, False, False]), "spurious": torch.tensor([False, True, False, False]),
               "noise": torch.tensor([False, False, True, True])}
    shares = region_shares(attr, regions)
    assert shares == pytest.approx({"core": 0.125, "spurious": 0.375, "noise": 0.5})
    # For a linear model IG with a zero baseline is exactly w * x.
    lin = torch.nn.Linear(4, 2, bias=False)
    x = torch.randn(5, 4)
    ig = integrated_gradients(lin, x, torch.ones(5, dtype=torch.long), n_steps=8)
    torch.testing.assert_close(ig, lin.weight[1] * x)
