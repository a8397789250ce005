"""Any nn.Module is a model, and what a dataset and a model promise is checked before anything
trains: a plain ``nn.Sequential`` (no ``features``, no ``head``) gets its representation from the
input of its last ``nn.Linear`` and runs every metric through a sweep; data that does not match
its dataset's declaration, and a model whose last linear layer has no one input, stop the sweep
with one ``lrsc: error:`` line naming the dataset or model, no run trained."""
import math

import pytest
import torch
import yaml
from torch import nn

from lrsc import datasets, models, prune, sweep, variables, worker
from lrsc.cli import main
from lrsc.datasets import Info, Split
from lrsc.errors import RunsFailed


@pytest.fixture(autouse=True)
def _own_registries(monkeypatch):
    """What a test registers goes when it ends: later sweeps of the session compute none of it."""
    for registry in (datasets.REGISTRY, models.REGISTRY, variables.REGISTRY):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


@pytest.fixture
def trained(monkeypatch):
    """Every run trained from here on, by hash."""
    seen = []
    real = worker._train_one
    monkeypatch.setattr(worker, "_train_one", lambda store, run, *a: seen.append(run.hash) or real(store, run, *a))
    return seen


def sequential(*, input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                         nn.Linear(width, num_classes))


def _toy(declared: tuple[int, ...] = (2,), dtype: str = "float32"):
    """A two-feature dataset whose check declares inputs of shape ``declared``, built as ``dtype`` (a
    name the builder closes over, so each variant is other code to the dataset cache)."""

    def check(p: dict) -> Info:
        return Info(p["n_train"], declared, 2)

    def toy(*, seed: int = 0, n_train: int = 200, n_test: int = 200):
        g = torch.Generator().manual_seed(seed)

        def split(n: int, biased: bool) -> Split:
            y = torch.randint(2, (n,), generator=g)
            b = y.clone() if biased else torch.randint(2, (n,), generator=g)
            x = torch.stack([y + 0.5 * torch.randn(n, generator=g), b + 0.1 * torch.randn(n, generator=g)], 1)
            return Split(x.to(getattr(torch, dtype)), y, b, num_classes=2, num_bias=2)

        return split(n_train, True), split(n_test, False)

    datasets.register("toy", check=check, replace=True)(toy)


CFG = {"title": "contracts", "dataset": "toy", "model": "plain",
       "train": {"batch_size": 50, "max_steps": 60, "eval_every": 20},
       "metrics": {"n_act": 50, "n_attr": 10, "ig_steps": 4, "prune_fractions": [0.5]},
       "grid": {"lr": [0.1, 0.5]}}


def test_a_plain_module_has_the_input_of_its_last_linear_as_representation():
    model = sequential(input_shape=(8,), num_classes=3)
    x = torch.randn(5, 8)
    feats, logits = models.features_and_logits(model, x)
    assert torch.equal(logits, model(x)) and torch.equal(feats, model[:3](x))
    assert models.output_layer(model) is model[3]
    assert prune.prunable_layers(model) == [model[1]]  # the output layer is never pruned
    half = prune.prune_structured(model, 0.5)
    assert (half[1].weight.abs().sum(1) == 0).sum() == 8 and torch.equal(half[3].weight, model[3].weight)
    mf, ml = models.predict(model, x)
    assert torch.equal(mf, feats) and torch.equal(ml, logits)


def test_a_plain_sequential_runs_every_metric_through_a_sweep(tmp_path):
    _toy()
    models.register("plain", replace=True)(sequential)
    ds = sweep.run_sweep(CFG, tmp_path / "out", progress=False)
    assert (ds.status == "done").all(), ds.status.values
    assert ds.sizes["neuron"] == 16  # the width of the layer before the last nn.Linear
    for name in ("test_acc", "prunability", "act_comp", "class_sep", "csi", "attr_entropy"):
        assert ds[name].notnull().all(), name
    assert ((ds.act_sparsity >= 0) & (ds.act_sparsity <= 1)).all()  # post-ReLU inputs of the last layer


class Twice(nn.Module):
    """Its last nn.Linear runs twice per forward pass: no one penultimate representation."""

    def __init__(self, width: int):
        super().__init__()
        self.inner, self.out = nn.Linear(2, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.out(torch.relu(self.inner(x))))[:, :2]


def twice(*, input_shape: tuple[int, ...], num_classes: int, width: int = 4) -> Twice:
    return Twice(width)


def _sweep_cli(tmp_path, capsys, cfg: dict) -> tuple[int, str]:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(cfg))
    code = main(["sweep", str(params), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case,message", [
    ("float64", "dataset 'toy': its training split holds float64 inputs; inputs must be float32"),
    ("shape", "dataset 'toy': its training split holds inputs of shape (2,), but its check declares input_shape (3,)"),
    ("twice", "its last nn.Linear ran 2 times in one forward pass"),
    ("classes", "model 'plain' with model_params {'width': 16} gives outputs of shape (3,)"),
])
def test_a_broken_contract_is_one_line_before_any_run_trains(tmp_path, capsys, trained, case, message):
    _toy(declared=(3,) if case == "shape" else (2,), dtype=case if case == "float64" else "float32")
    if case == "twice":
        models.register("plain", replace=True)(twice)
    elif case == "classes":  # a model that ignores num_classes
        models.register("plain", replace=True)(lambda *, input_shape, num_classes, width=16:
                                              sequential(input_shape=input_shape, num_classes=3, width=width))
    else:
        models.register("plain", replace=True)(sequential)
    code, err = _sweep_cli(tmp_path, capsys, CFG)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lrsc: error:") and message in lines[0], err
    assert trained == []
    assert not (tmp_path / "out" / "results.nc").exists()


def test_on_dask_each_unit_checks_its_contract_before_it_trains(tmp_path):
    pytest.importorskip("distributed")
    _toy(dtype="float64")
    models.register("plain", replace=True)(sequential)
    with pytest.raises(RunsFailed, match="2 of 2 runs failed.*dataset 'toy': its training split holds float64 inputs"):
        sweep.run_sweep(CFG, tmp_path / "out", engine="dask", workers=1, progress=False)
