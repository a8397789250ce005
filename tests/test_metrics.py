"""Known-answer tests for every metric the paper defines."""
import math

import numpy as np

import pytest
import torch

from lrsc import metrics, models, prune
from lrsc.attribution import integrated_gradients, region_shares
from lrsc.records import bc_loss_ratio


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


def test_class_separation_known_answers():
    y = torch.tensor([0, 0, 0, 1, 1])
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    orthogonal = torch.stack([e1, 2 * e1, e1, e2, 3 * e2])
    assert metrics.class_separation(orthogonal, y) == pytest.approx(1.0)  # within-class distance 0
    # By hand: 2 classes of 2 points; class 0 = {e1, e2}, class 1 = {e1, e2}: the classes are identical.
    same = torch.stack([e1, e2, e1, e2])
    assert metrics.class_separation(same, torch.tensor([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    # class 0 = {e1, e1}, class 1 = {e1, e2}: d_within = (0 + 2) / 8, d_total = 6 / 16, R^2 = 1/3.
    mixed = torch.stack([e1, e1, e1, e2])
    assert metrics.class_separation(mixed, torch.tensor([0, 0, 1, 1])) == pytest.approx(1 / 3)
    assert math.isnan(metrics.class_separation(torch.stack([e1, e1]), torch.tensor([0, 1])))


def test_selectivity_known_answers():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    h = torch.tensor([
        [3.0, 1.0, 2.0, 0.0],
        [3.0, 1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ])
    index = metrics.selectivity(h, y)
    # unit 0 fires only for class 0, on all its samples: 1. Unit 1: identical class means: 0.
    # unit 2: mu_max = 1 (class 0), mu_rest = 0, fires on half of class 0's samples: 0.5. Unit 3 never fires: NaN.
    assert index[:3].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert math.isnan(index[3])
    assert metrics.csi(h, y) == pytest.approx(0.5)  # the mean over the units that fire
    b = torch.tensor([1, 1, 0, 0, 0, 0])  # two bias values: unit 0 is also perfectly bias-selective
    assert metrics.selectivity(h, b)[0] == pytest.approx(1.0) and metrics.bsi(h, b) == pytest.approx(0.5)
    # mu_max = 2, mu_rest = mean(1, 0) = 0.5: (2 - 0.5) / (2 + 0.5) = 0.6, coverage 1
    graded = torch.tensor([[2.0], [1.0], [0.0]])
    assert metrics.selectivity(graded, torch.tensor([0, 1, 2])).item() == pytest.approx(0.6)


def test_attribution_entropy_known_answers():
    one = torch.zeros(1, 3, 4, 4)
    one[0, 1, 2, 3] = -5.0
    assert metrics.attribution_entropy(one).item() == pytest.approx(0.0)  # all on one pixel
    even = torch.ones(1, 3, 4, 4)
    assert metrics.attribution_entropy(even).item() == pytest.approx(1.0)  # spread over all 16 pixels
    # two of four features share it equally: log 2 / log 4
    assert metrics.attribution_entropy(torch.tensor([[1.0, -1.0, 0.0, 0.0]])).item() == pytest.approx(0.5)
    assert math.isnan(metrics.attribution_entropy(torch.zeros(1, 4)).item())


def test_global_pruning_ranks_across_layers():
    torch.manual_seed(0)
    model = models.build("fcn", input_shape=(4,), num_classes=2, depth=2, width=3)
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor([[1.0] * 4, [2.0] * 4, [3.0] * 4]))  # per weight 1, 2, 3
        model.hidden[1].weight.copy_(torch.tensor([[0.5] * 3, [5.0] * 3, [6.0] * 3]))  # per weight 0.5, 5, 6
    x = torch.randn(8, 4)
    assert torch.equal(prune.prune_structured(model, 0.0, scope="global")(x), model(x))
    pruned = prune.prune_structured(model, 0.5, scope="global")  # 3 of 6 neurons: per-weight scores 0.5, 1, 2
    assert (pruned.hidden[0].weight.abs().sum(1) == 0).tolist() == [True, True, False]
    assert (pruned.hidden[1].weight.abs().sum(1) == 0).tolist() == [True, False, False]
    layerwise = prune.prune_structured(model, 0.5, scope="layer")  # round(1.5) = 2 of each layer's 3
    assert [(layer.weight.abs().sum(1) == 0).sum().item() for layer in layerwise.hidden] == [2, 2]


def test_step_records_by_hand():
    from lrsc.records import RECORDS, step_records

    logits = torch.tensor([[[3.0, 0.0], [0.0, 3.0], [0.0, 0.0], [4.0, 0.0]]])  # (A=1, B=4, K=2)
    y = torch.tensor([[0, 0, 1, 1]])
    conflicting = torch.tensor([[False, True, False, True]])
    losses = torch.nn.functional.cross_entropy(logits[0], y[0], reduction="none")[None]
    weights = [torch.tensor([[[3.0, 4.0]]]), torch.tensor([[0.0, 12.0]])]
    rec = dict(zip(RECORDS, step_records(losses, logits, y, conflicting, weights, confident_prob=0.9)[0].tolist()))
    l = losses[0]
    assert rec["loss"] == pytest.approx(l.mean().item())
    assert rec["bc_loss_ratio"] == pytest.approx((l[1] + l[3]).item() / l.sum().item())
    assert rec["bc_loss"] == pytest.approx((l[1] + l[3]).item() / 2) and rec["ba_loss"] == pytest.approx((l[0] + l[2]).item() / 2)
    # both BC samples are predicted wrong, with p = 0.953 and 0.982 > 0.9
    assert rec["confident_bc"] == 1.0
    assert rec["logit_norm"] == pytest.approx((3 + 3 + 0 + 4) / 4)
    assert rec["param_norm"] == pytest.approx(13.0)  # sqrt(9 + 16 + 144)


def test_no_attribution_inputs_give_nan_attribution_variables(tiny_parity):
    from lrsc.evaluation import evaluate
    from lrsc.plan import plan
    from lrsc.runs import init_model, load_data

    tiny_parity["metrics"] = {**tiny_parity.get("metrics", {}), "n_attr": 0}
    run = plan(tiny_parity)[1][0].config
    train_set, test_set = load_data(run, "cpu")
    values = evaluate(run, init_model(run, train_set), test_set, None, ("attr_core", "attr_entropy", "test_acc"))
    assert np.isnan(values["attr_core"]) and np.isnan(values["attr_entropy"]) and 0 <= values["test_acc"] <= 1
