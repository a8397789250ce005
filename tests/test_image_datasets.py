"""The four image datasets with spurious correlations.

Needs real MNIST and CIFAR-10: set LRSC_DATA to a data root in torchvision's layout
(``shared/data`` works); without it every test here is skipped. Builds are small
(2000 train / 1000 test) and cached in a temporary folder through LRSC_CACHE.
"""
import os
from pathlib import Path

import pytest
import torch
import torchvision

from lrsc import datasets
from lrsc.datasets import colored_mnist as colored_mnist_module
from lrsc.datasets.colored_mnist import LFF_COLORS
from lrsc.datasets.corrupted_cifar10 import CORRUPTIONS
from lrsc.datasets.images import load_cifar10
from lrsc.errors import ConfigError
from lrsc.seeding import generator

DATA = os.environ.get("LRSC_DATA", "")
pytestmark = pytest.mark.skipif(not DATA, reason="set LRSC_DATA to a folder with MNIST and CIFAR-10 (e.g. shared/data)")

N_TRAIN, N_TEST = 2000, 1000
SHAPES = {"colored_mnist": (3, 28, 28), "double_mnist": (3, 28, 56), "mnist_cifar": (3, 64, 32),
          "corrupted_cifar10": (3, 32, 32)}
DEFAULT_RHO = {"colored_mnist": 0.01, "double_mnist": 0.01, "mnist_cifar": 0.05, "corrupted_cifar10": 0.05}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LRSC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every dataset built once at the test size, with its default rho."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRSC_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {name: datasets.build(name, seed=0, n_train=N_TRAIN, n_test=N_TEST) for name in SHAPES}


@pytest.mark.parametrize("name", SHAPES)
def test_exact_bias_conflicting_count(built, name):
    train, _ = built[name]
    n_bc = round(DEFAULT_RHO[name] * N_TRAIN)
    assert int(train.conflicting.sum()) == n_bc
    # b predicts y with accuracy exactly 1 - rho.
    assert int((train.b == train.y).sum()) == N_TRAIN - n_bc


@pytest.mark.parametrize("name", SHAPES)
def test_test_set_is_unbiased(built, name):
    _, test = built[name]
    counts = torch.bincount(test.group, minlength=100).float()
    expected = len(test) / 100
    assert (counts > 0).all(), "every (y, b) pair must appear in the unbiased test set"
    # chi-square with 99 degrees of freedom: mean 99, sd 14; 170 is five sd out.
    assert ((counts - expected) ** 2 / expected).sum() < 170
    assert torch.bincount(test.b, minlength=10).tolist() == [len(test) // 10] * 10


@pytest.mark.parametrize("name", SHAPES)
def test_images_shape_dtype_range(built, name):
    for split, n in zip(built[name], (N_TRAIN, N_TEST)):
        assert split.x.shape == (n, *SHAPES[name])
        assert split.x.dtype == torch.float32 and split.y.dtype == split.b.dtype == torch.int64
        assert split.x.min() >= 0 and split.x.max() <= 1
        assert split.num_classes == split.num_bias == 10
        for mask in split.regions.values():
            assert mask.shape == SHAPES[name] and mask.dtype == torch.bool


@pytest.mark.parametrize("name", ["double_mnist", "mnist_cifar"])
def test_regions_split_the_image_in_halves(built, name):
    regions = built[name][1].regions
    assert set(regions) == {"core", "spurious"}
    assert not (regions["core"] & regions["spurious"]).any() and (regions["core"] | regions["spurious"]).all()
    assert regions["core"].sum() == regions["spurious"].sum()


def test_colored_mnist_colours(built):
    train, _ = built["colored_mnist"]
    x = train.x
    # Background (grey level 0) is exactly black in every channel, not tinted: where the
    # colour's strongest channel is 0 all channels are. It is most of each image.
    strongest = LFF_COLORS[train.b].argmax(1)[:, None, None, None].expand(-1, 1, *x.shape[2:])
    background = x.gather(1, strongest)[:, 0] == 0
    assert (x.amax(1)[background] == 0).all()
    assert background.float().mean() > 0.7
    # The brightest pixel of a digit is at full grey level, so it shows the colour itself.
    flat = x.flatten(2)
    brightest = flat.gather(2, flat.sum(1, keepdim=True).argmax(2, keepdim=True).expand(-1, 3, -1))[:, :, 0]
    close = (brightest - LFF_COLORS[train.b]).abs().amax(1) < 0.03
    assert close.float().mean() > 0.98


def test_double_mnist_right_digit_brighter(built):
    x = built["double_mnist"][0].x
    left, right = x[..., :28].mean(), x[..., 28:].mean()
    assert right > 1.5 * left
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_mnist_cifar_layout(built):
    x = built["mnist_cifar"][0].x
    top, bottom = x[:, :, :32], x[:, :, 32:]
    assert torch.equal(top[:, 0], top[:, 1]) and torch.equal(top[:, 0], top[:, 2])  # grey digit
    assert (top[:, :, :2] == 0).all() and (top[:, :, :, -2:] == 0).all()  # zero padding
    assert not torch.equal(bottom[:, 0], bottom[:, 1])  # colour photograph


@pytest.mark.parametrize("fn", CORRUPTIONS, ids=lambda f: f.__name__)
def test_each_corruption_changes_images_within_range(fn):
    images = load_cifar10(Path(DATA).expanduser(), train=False)[0][:32].float() / 255
    for severity in (1, 5):
        out = fn(images, severity, generator(0, "test"))
        assert out.shape == images.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        assert (out - images).abs().mean() > 1e-3
    assert torch.equal(fn(images, 3, generator(1, "test")), fn(images, 3, generator(1, "test")))


def test_corruption_directions():
    images = load_cifar10(Path(DATA).expanduser(), train=False)[0][:32].float() / 255
    by_name = {fn.__name__: fn for fn in CORRUPTIONS}
    g = generator(0, "test")
    assert by_name["brightness"](images, 5, g).mean() > images.mean()
    assert by_name["contrast"](images, 5, g).std() < images.std()
    grey = lambda t: t.amax(1) - t.amin(1)  # noqa: E731  (saturation proxy)
    assert grey(by_name["saturate"](images, 1, g)).mean() < grey(images).mean() < grey(by_name["saturate"](images, 5, g)).mean()


@pytest.mark.parametrize("name", ["colored_mnist", "corrupted_cifar10"])
def test_deterministic_by_seed(name, tmp_path, monkeypatch):
    def build(seed, folder):
        monkeypatch.setenv("LRSC_CACHE", str(tmp_path / folder))
        return datasets.build(name, seed=seed, n_train=300, n_test=100)

    a, b, c = build(0, "one"), build(0, "two"), build(1, "three")
    for split_a, split_b, split_c in zip(a, b, c):
        assert torch.equal(split_a.x, split_b.x) and torch.equal(split_a.y, split_b.y) and torch.equal(split_a.b, split_b.b)
        assert not torch.equal(split_a.x, split_c.x)


def test_second_build_comes_from_the_cache(cache, monkeypatch):
    first = datasets.build("colored_mnist", seed=0, n_train=300, n_test=100)
    files = list(cache.glob("colored_mnist-*.pt"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    def no_raw_data(*args, **kwargs):
        raise AssertionError("raw MNIST was read although the dataset is cached")

    monkeypatch.setattr(colored_mnist_module, "load_mnist", no_raw_data)
    second = datasets.build("colored_mnist", seed=0, n_train=300, n_test=100)
    assert torch.equal(first[0].x, second[0].x) and torch.equal(first[1].b, second[1].b)
    # Other parameters are another cache entry.
    with pytest.raises(AssertionError, match="raw MNIST"):
        datasets.build("colored_mnist", seed=0, n_train=301, n_test=100)


def test_partial_cifar_test_set_warns_and_uses_what_exists():
    available = len(load_cifar10(Path(DATA).expanduser(), train=False)[1])
    if available == 10000:
        pytest.skip("this data root has the full CIFAR-10 test set")
    with pytest.warns(UserWarning, match=f"only {available} test images"):
        _, test = datasets.build("mnist_cifar", seed=0, n_train=100)
    assert len(test) == available


def _no_download(self):
    raise RuntimeError("network disabled in tests")


@pytest.mark.parametrize("name, missing", [("colored_mnist", "MNIST/raw"), ("double_mnist", "MNIST/raw"),
                                           ("mnist_cifar", "cifar-10-batches-py"),
                                           ("corrupted_cifar10", "cifar-10-batches-py")])
def test_empty_data_root_is_a_clear_error(name, missing, tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", _no_download)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", _no_download)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=missing) as err:
        datasets.build(name, data_root=str(empty), n_train=10, n_test=10)
    assert str(empty) in str(err.value)


@pytest.mark.parametrize("name, params, word", [
    ("colored_mnist", {"rho": 1.5}, "rho"),
    ("colored_mnist", {"n_train": 10**6}, "n_train"),
    ("double_mnist", {"n_test": 0}, "n_test"),
    ("double_mnist", {"brightness_ratio": 0.5}, "brightness_ratio"),
    ("colored_mnist", {"color_std": -0.1}, "color_std"),
    ("corrupted_cifar10", {"severity": 6}, "severity"),
    ("mnist_cifar", {"n_train": 60000}, "n_train"),
])
def test_bad_parameters_are_config_errors(name, params, word):
    with pytest.raises(ConfigError, match=word):
        datasets.build(name, **params)
