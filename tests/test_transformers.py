"""The transformers: torchvision's Swin-T (``swin_t``) and the reduced ViT (``vit_small``):
building, the models' interface (``features`` / ``head``), training, structured pruning and
Swin-T's weights file."""
import pytest
import torch
from torch import nn

from lrsc import models, prune
from lrsc.datasets import Split
from lrsc.errors import ConfigError
from lrsc.train import train

TINY_VIT = {"patch_size": 4, "depth": 2, "width": 32, "heads": 2}


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return models.build("swin_t", input_shape=(3, 32, 32), num_classes=10).eval()


@pytest.mark.parametrize("name, params", [("vit_small", {}), ("vit_small", TINY_VIT), ("swin_t", {})])
@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 32), (1, 28, 28)])
def test_models_check_for_image_shapes(name, params, shape):
    models.check(name, shape, 10, params)


@pytest.mark.parametrize("name, params, shape, word", [
    ("vit_small", {}, (3, 30, 32), "multiples of patch_size=4"),
    ("vit_small", {"width": 30, "heads": 4}, (3, 32, 32), "multiple of heads"),
    ("vit_small", {}, (784,), r"image inputs of shape \(C, H, W\)"),
    ("vit_small", {"depth": "4"}, (3, 32, 32), "depth must be an integer"),
    ("swin_t", {}, (3, 2, 2), "cannot take inputs of shape"),
])
def test_bad_parameters_are_config_errors(name, params, shape, word):
    with pytest.raises(ConfigError, match=word):
        models.check(name, shape, 10, params)


def test_vit_interface():
    model = models.build("vit_small", input_shape=(3, 64, 32), num_classes=7, **TINY_VIT).eval()
    x = torch.rand(5, 3, 64, 32)
    h = model.features(x)
    assert h.shape == (5, 32) and model(x).shape == (5, 7)
    assert isinstance(model.head, nn.Linear) and torch.allclose(model.head(h), model(x))
    assert not list(model.buffers())  # no BatchNorm: the stacked trainer can take it
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    feats, logits = models.predict(model, x, chunk=2)
    assert torch.allclose(feats, h, atol=1e-6) and logits.shape == (5, 7)


def test_swin_interface(swin):
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        h = swin.features(x)
        assert h.shape == (3, 768) and swin(x).shape == (3, 10)
        assert torch.allclose(swin.head(h), swin(x))
    assert swin.head is swin.net.head and swin.head.out_features == 10
    grey = models.build("swin_t", input_shape=(1, 28, 28), num_classes=2).eval()
    with torch.no_grad():
        assert grey(torch.rand(2, 1, 28, 28)).shape == (2, 2)


def _easy_task(n=64, seed=0):
    """Inputs of shape (3, 16, 16) whose class is which half of the image is brighter."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = 0.3 * torch.rand(n, 3, 16, 16, generator=g)
    x[y == 0, :, :8] += 0.5
    x[y == 1, :, 8:] += 0.5
    return Split(x, y, y.clone(), num_classes=2, num_bias=2)


def test_vit_small_trains():
    data = _easy_task()
    torch.manual_seed(0)
    model = models.build("vit_small", input_shape=(3, 16, 16), num_classes=2, **TINY_VIT)
    before = nn.functional.cross_entropy(model(data.x), data.y).item()
    result = train(model, data, lr=0.1, batch_size=16, max_steps=300, eval_every=10, seed=0)
    assert result.converged and result.train_acc == 1.0  # stops at the first check at 100%
    model.eval()
    with torch.no_grad():
        after = nn.functional.cross_entropy(model(data.x), data.y).item()
        accuracy = (model(data.x).argmax(1) == data.y).float().mean().item()
    assert after < before and accuracy >= 0.95


def _hidden_outputs(model, layers, x):
    """Outputs of each of ``layers`` (nn.Linear) on ``x``, by forward hooks."""
    out = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, k=k: out.__setitem__(k, o)) for k, layer in enumerate(layers)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [out[k] for k in range(len(layers))]


@pytest.mark.parametrize("name", ["vit_small", "swin_t"])
def test_pruning_invariants(name, swin):
    torch.manual_seed(0)
    model = swin if name == "swin_t" else models.build("vit_small", input_shape=(3, 32, 32), num_classes=10,
                                                       **TINY_VIT).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        assert torch.equal(prune.prune_structured(model, 0.0)(x), reference)
    pruned = prune.prune_structured(model, 0.5)
    assert torch.equal(pruned.head.weight, model.head.weight)
    # the MLPs' first layers (vit: fc1; swin: mlp[0]): pruned neurons output exactly 0, and so does GELU
    if name == "vit_small":
        firsts = [block.fc1 for block in pruned.blocks]
    else:
        firsts = [m.mlp[0] for m in pruned.modules() if hasattr(m, "mlp")]
    assert firsts
    for layer, out in zip(firsts, _hidden_outputs(pruned, firsts, x)):
        dead = layer.weight.abs().sum(1) == 0
        assert dead.sum() == round(0.5 * layer.out_features)
        assert (out[..., dead] == 0).all() and (nn.functional.gelu(out[..., dead]) == 0).all()
        assert (out[..., ~dead] != 0).any()
    with torch.no_grad():
        assert not torch.equal(pruned(x), reference)


def test_swin_weights_file(tmp_path, swin):
    with pytest.raises(ConfigError, match="weights=.*no such file"):
        models.build("swin_t", input_shape=(3, 32, 32), num_classes=10, weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match="no such file"):
        models.check("swin_t", (3, 32, 32), 10, {"weights": str(tmp_path / "nope.pth")})
    path = tmp_path / "swin_t.pth"
    torch.save(swin.net.state_dict(), path)
    # a 2-class head: every weight but the head's comes from the file
    loaded = models.build("swin_t", input_shape=(3, 32, 32), num_classes=2, weights=str(path))
    mine, theirs = loaded.net.state_dict(), swin.net.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs if not k.startswith("head."))
    assert loaded.head.out_features == 2
    models.check("swin_t", (3, 32, 32), 2, {"weights": str(path)})
    torch.save({"not_swin.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="not a torchvision Swin-T state dict"):
        models.build("swin_t", input_shape=(3, 32, 32), num_classes=2, weights=str(tmp_path / "other.pth"))
