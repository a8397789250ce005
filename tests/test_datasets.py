"""Parity and moon-star: BC counts, bias strength, unbiased test sets, determinism."""
import pytest
import torch

from lrsc import datasets
from lrsc.errors import ConfigError


@pytest.mark.parametrize("name,params", [
    ("parity", {"n_core": 4, "n_spu": 1, "n_noise": 3, "rho": 0.07, "n_train": 1000, "n_test": 2000}),
    ("moon_star", {"rho": 0.07, "image_size": 16, "n_train": 1000, "n_test": 2000}),
])
def test_bias_structure(name, params):
    train, test = datasets.build(name, seed=3, **params)
    assert train.conflicting.sum().item() == round(0.07 * 1000)
    assert (train.b == train.y).float().mean().item() == pytest.approx(1 - 0.07)
    counts = torch.bincount(test.group, minlength=test.num_groups).float()
    assert counts.min() > 0.8 * len(test) / test.num_groups  # every (y, b) pair, near-uniformly
    again, _ = datasets.build(name, seed=3, **params)
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    other, _ = datasets.build(name, seed=4, **params)
    assert not torch.equal(train.x, other.x)


def test_parity_bits_encode_labels():
    train, test = datasets.build("parity", seed=0, n_core=5, n_spu=2, n_noise=6, n_train=500, n_test=500)
    for split in (train, test):
        bits = (split.x > 0).long()
        assert split.x.shape == (500, 13) and set(split.x.unique().tolist()) == {-1.0, 1.0}
        assert torch.equal(bits[:, :5].sum(1) % 2, split.y)
        assert torch.equal(bits[:, 5:7].sum(1) % 2, split.b)
    assert train.regions["core"].sum() == 5 and train.regions["noise"].sum() == 6


def test_moon_star_images_sit_in_the_bias_quadrant():
    train, _ = datasets.build("moon_star", seed=0, image_size=32, n_train=200, n_test=10, pixel_noise=0.0)
    assert train.x.shape == (200, 1, 32, 32) and train.x.min() >= 0 and train.x.max() <= 1
    upper_left = train.x[:, 0, :16, :16].sum((1, 2))
    lower_right = train.x[:, 0, 16:, 16:].sum((1, 2))
    assert torch.equal((lower_right > upper_left).long(), train.b)
    # Stars fill more of their disk than moons do.
    area = train.x.flatten(1).sum(1)
    assert area[train.y == 1].mean() > area[train.y == 0].mean()


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*parity"):
        datasets.build("nope")
    with pytest.raises(ConfigError, match="unknown parameter 'n_bits'.*n_core"):
        datasets.build("parity", n_bits=3)
    with pytest.raises(ConfigError, match="rho must lie in"):
        datasets.build("parity", rho=1.5)
    with pytest.raises(ConfigError, match="n_spu < n_core"):
        datasets.build("parity", n_core=2, n_spu=2)
