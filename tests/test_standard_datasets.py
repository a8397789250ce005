"""CIFAR-10/100, CelebA, Waterbirds and ImageNet read from tiny fixtures in each exact on-disk
layout (written here to tmp_path), plus the real CIFAR-10 where LRSC_DATA points to it.

The fixtures encode what each image should be in its pixels (an index, or the attributes as
colours), so the tests see that every image comes with its own labels.
"""
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from lrsc import datasets
from lrsc.errors import ConfigError

DATA = os.environ.get("LRSC_DATA", "")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LRSC_CACHE", str(tmp_path / "cache"))


def _no_download(self):
    raise RuntimeError("network disabled in tests")


# ----- fixtures -----

def _cifar100(root, n_train=200, n_test=40):
    """cifar-100-python/{train,test} as the official pickles: image i is all pixel value i
    (train) or 255 - i (test), its fine label i % 100."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n, value in (("train", n_train, lambda i: i), ("test", n_test, lambda i: 255 - i)):
        data = np.stack([np.full(3072, value(i), dtype=np.uint8) for i in range(n)])
        batch = {b"filenames": [f"img{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
                 b"fine_labels": [i % 100 for i in range(n)], b"coarse_labels": [i % 20 for i in range(n)],
                 b"data": data}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return root


def _solid(path, size, rgb, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, fmt)


def _colour(a, b):
    """Solid colour encoding two binary attributes: red high for ``a``, green high for ``b``."""
    return (40 + 160 * a, 40 + 160 * b, 90)


# (blond, male, partition) of the CelebA fixture's images: 6 of each attribute pair in train,
# 1 in valid, 2 in test.
CELEBA_ROWS = [(bl, m, part) for part, reps in ((0, 6), (1, 1), (2, 2)) for _ in range(reps)
               for bl in (0, 1) for m in (0, 1)]


def _celeba(root):
    base = root / "celeba"
    names = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Blond_Hair", "Male", "Young"]
    attr = [str(len(CELEBA_ROWS)), " ".join(names)]
    part = []
    for i, (blond, male, partition) in enumerate(CELEBA_ROWS, start=1):
        file = f"{i:06d}.jpg"
        _solid(base / "img_align_celeba" / file, (178, 218), _colour(blond, male), "JPEG")
        values = [-1, 1, 2 * blond - 1, 2 * male - 1, 1]
        attr.append(file + "".join(f" {v:2d}" for v in values))  # the real file pads with spaces
        part.append(f"{file} {partition}")
    (base / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (base / "list_eval_partition.txt").write_text("\n".join(part) + "\n")
    return root


# (y, place, split) of the Waterbirds fixture: 5 of each group in train, 1 in val, 3 in test.
WATERBIRDS_ROWS = [(y, p, split) for split, reps in ((0, 5), (1, 1), (2, 3)) for _ in range(reps)
                   for y in (0, 1) for p in (0, 1)]


def _waterbirds(root):
    base = root / "waterbirds_v1.0"
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (y, place, split) in enumerate(WATERBIRDS_ROWS, start=1):
        file = f"{1 + y:03d}.Bird_{y}/Bird_{y}_{i:04d}.jpg"
        _solid(base / file, (120 + 7 * i, 90 + 3 * i), _colour(y, place), "JPEG")  # various sizes, as the real set
        lines.append(f"{i},{file},{y},{split},{place},/{'o/ocean' if place else 'f/forest'}/000{i}.jpg")
    (base / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


IMAGENET_CLASSES = ["n01440764", "n01443537", "n01484850"]


def _imagenet(root, n_train=4, n_val=2):
    for k, wnid in enumerate(IMAGENET_CLASSES):
        for part, n in (("train", n_train), ("val", n_val)):
            for i in range(n):
                _solid(root / "imagenet" / part / wnid / f"{wnid}_{i}.JPEG", (64, 48), (30 + 90 * k, 60, 60), "JPEG")
    return root


# ----- CIFAR -----

def _index(split):
    """The fixture's image index of every sample (its constant pixel value)."""
    return (split.x[:, 0, 0, 0] * 255).round().long()


def test_cifar100_official_split_sizes_and_labels(tmp_path):
    root = str(_cifar100(tmp_path / "data"))
    info = datasets.check("cifar100", {"data_root": root})
    assert info == datasets.Info(200, (3, 32, 32), 100)
    with pytest.warns(UserWarning, match="only 40 test images"):
        train, test = datasets.build("cifar100", seed=0, data_root=root)
    assert train.x.shape == (200, 3, 32, 32) and test.x.shape == (40, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert sorted(_index(train).tolist()) == list(range(200))
    assert sorted((255 - _index(test)).tolist()) == list(range(40))
    assert torch.equal(train.y, _index(train) % 100) and torch.equal(test.y, (255 - _index(test)) % 100)
    for split in (train, test):  # no spurious feature: b = y, nothing conflicting, groups are the classes
        assert torch.equal(split.b, split.y) and not split.conflicting.any()
        assert split.num_classes == split.num_bias == 100
        assert torch.equal(split.group, split.y * 101)
    small, small_test = datasets.build("cifar100", seed=1, data_root=root, n_train=30, n_test=10)  # no warning
    assert len(small) == 30 and len(small_test) == 10 and len(set(_index(small).tolist())) == 30


def test_cifar100_carved_test_split_is_held_out(tmp_path):
    root = str(_cifar100(tmp_path / "data"))
    train, test = datasets.build("cifar100", seed=0, data_root=root, test_from_train=50)
    assert len(train) == 150 and len(test) == 50
    assert (_index(test) < 200).all(), "the carved test images come from the training pickle"
    assert not set(_index(train).tolist()) & set(_index(test).tolist())
    assert torch.equal(test.y, _index(test) % 100)
    assert datasets.check("cifar100", {"data_root": root, "test_from_train": 50}).n_train == 150
    again, again_test = datasets.build("cifar100", seed=0, data_root=root, test_from_train=50, n_train=20, n_test=10)
    assert len(again) == 20 and len(again_test) == 10
    assert set(_index(again_test).tolist()) <= set(_index(test).tolist())  # the same held-out images, seeded
    other = datasets.build("cifar100", seed=1, data_root=root, test_from_train=50)[1]
    assert set(_index(other).tolist()) != set(_index(test).tolist())


@pytest.mark.parametrize("params, word", [
    ({"n_train": 201}, "n_train=201 exceeds the 200"),
    ({"test_from_train": 50, "n_train": 151}, "left after test_from_train=50"),
    ({"test_from_train": 50, "n_test": 51}, "n_test=51 exceeds the 50 held-out"),
    ({"test_from_train": 200}, "leaves no training images"),
    ({"test_from_train": -1}, "test_from_train must be an integer >= 0"),
    ({"n_test": 0}, "n_test must be a positive integer"),
])
def test_cifar_bad_sizes_are_config_errors(tmp_path, params, word):
    root = str(_cifar100(tmp_path / "data"))
    with pytest.raises(ConfigError, match=word):
        datasets.build("cifar100", data_root=root, **params)


@pytest.mark.skipif(not DATA, reason="set LRSC_DATA to a folder with CIFAR-10 (e.g. shared/data)")
def test_cifar10_real_carved_and_official_test():
    train, test = datasets.build("cifar10", seed=0, n_train=2000, test_from_train=1000)
    assert train.x.shape == (2000, 3, 32, 32) and len(test) == 1000 and train.num_classes == 10
    seen = {row.numpy().tobytes() for row in (train.x * 255).round().to(torch.uint8).flatten(1)}
    assert not any(row.numpy().tobytes() in seen for row in (test.x * 255).round().to(torch.uint8).flatten(1))
    assert torch.equal(train.b, train.y) and not train.conflicting.any()
    assert torch.bincount(test.y, minlength=10).min() > 50  # drawn from all classes
    _, official = datasets.build("cifar10", seed=0, n_train=100, n_test=100)
    assert len(official) == 100


# ----- CelebA -----

@pytest.mark.parametrize("target", ["blond", "gender"])
def test_celeba_targets_groups_and_split(tmp_path, target):
    root = str(_celeba(tmp_path / "data"))
    assert datasets.check("celeba", {"data_root": root, "image_size": 16, "target": target}) == \
        datasets.Info(24, (3, 16, 16), 2)
    train, test = datasets.build("celeba", seed=0, data_root=root, image_size=16, target=target)
    assert train.x.shape == (24, 3, 16, 16) and test.x.shape == (8, 3, 16, 16)
    for split in (train, test):
        blond = (split.x[:, 0].mean((1, 2)) > 0.5).long()  # the attributes, read back from the colours
        male = (split.x[:, 1].mean((1, 2)) > 0.5).long()
        if target == "blond":
            assert torch.equal(split.y, blond) and torch.equal(split.b, 1 - male)
        else:
            assert torch.equal(split.y, male) and torch.equal(split.b, 1 - blond)
        assert torch.bincount(split.group, minlength=4).tolist() == [len(split) // 4] * 4
        assert split.num_classes == split.num_bias == 2
    # Blond men are conflicting for either target: (y, b) = (blond, not female) or (male, not non-blond).
    blond_men = (train.y == 1) & (train.b == 0)
    assert blond_men.sum() == 6 and train.conflicting[blond_men].all()
    assert int(train.conflicting.sum()) == 12
    sub, sub_test = datasets.build("celeba", seed=3, data_root=root, image_size=16, n_train=10, n_test=5)
    assert len(sub) == 10 and len(sub_test) == 5


def test_celeba_bad_target_and_sizes(tmp_path):
    root = str(_celeba(tmp_path / "data"))
    with pytest.raises(ConfigError, match="target must be one of 'blond', 'gender'"):
        datasets.check("celeba", {"data_root": root, "target": "smiling"})
    with pytest.raises(ConfigError, match="n_test=9 exceeds the 8 test images"):
        datasets.check("celeba", {"data_root": root, "n_test": 9})


# ----- Waterbirds -----

def test_waterbirds_reads_the_wilds_layout(tmp_path):
    root = _waterbirds(tmp_path / "data")
    train, test = datasets.build("waterbirds", seed=0, data_root=str(root))
    assert train.x.shape == (20, 3, 64, 64) and test.x.shape == (12, 3, 64, 64)
    for split in (train, test):
        assert torch.equal(split.y, (split.x[:, 0].mean((1, 2)) > 0.5).long())  # bird type
        assert torch.equal(split.b, (split.x[:, 1].mean((1, 2)) > 0.5).long())  # place
        assert torch.bincount(split.group, minlength=4).tolist() == [len(split) // 4] * 4
        assert torch.equal(split.conflicting, split.y != split.b)
    sub, _ = datasets.build("waterbirds", seed=0, data_root=str(root), image_size=32, n_train=8, n_test=4)
    assert sub.x.shape == (8, 3, 32, 32)


def test_waterbirds_missing_image_is_named(tmp_path):
    root = _waterbirds(tmp_path / "data")
    next((root / "waterbirds_v1.0").rglob("*_0001.jpg")).unlink()
    with pytest.raises(ConfigError, match="cannot read image .*_0001.jpg"):
        datasets.build("waterbirds", seed=0, data_root=str(root))


# ----- ImageNet -----

def test_imagenet_image_folder(tmp_path):
    root = str(_imagenet(tmp_path / "data"))
    params = {"data_root": root, "n_per_class": 3, "n_test_per_class": 2, "image_size": 16}
    assert datasets.check("imagenet", params) == datasets.Info(9, (3, 16, 16), 3)
    train, test = datasets.build("imagenet", seed=0, **params)
    assert train.x.shape == (9, 3, 16, 16) and test.x.shape == (6, 3, 16, 16)
    for split in (train, test):
        assert torch.equal(split.y, ((split.x[:, 0].mean((1, 2)) * 255 - 30) / 90).round().long())
        assert torch.equal(split.b, split.y) and split.num_classes == 3
    two, _ = datasets.build("imagenet", seed=0, data_root=root, n_per_class=None, n_classes=2, image_size=16)
    assert len(two) == 8 and two.num_classes == 2
    with pytest.raises(ConfigError, match="has 4 images, fewer than the 5"):
        datasets.build("imagenet", seed=0, data_root=root, n_per_class=5, image_size=16)


# ----- missing data: one line naming the folder and the layout -----

@pytest.mark.parametrize("name, folder, layout", [
    ("cifar100", "", "cifar-100-python/train"),
    ("celeba", "celeba", "list_attr_celeba.txt"),
    ("waterbirds", "waterbirds_v1.0", "metadata.csv with columns img_id, img_filename, y, split, place"),
    ("imagenet", "imagenet", "imagenet/train/<wnid>/"),
])
def test_missing_folder_is_one_line_config_error(name, folder, layout, tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", _no_download)
    monkeypatch.setattr(torchvision.datasets.CelebA, "download", _no_download)
    empty = tmp_path / "empty"
    empty.mkdir()
    for call in (lambda: datasets.check(name, {"data_root": str(empty)}),
                 lambda: datasets.build(name, data_root=str(empty))):
        with pytest.raises(ConfigError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and layout in message and str(empty / folder) in message
