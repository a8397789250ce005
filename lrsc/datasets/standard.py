"""Standard classification: CIFAR-10, CIFAR-100 and ImageNet-1k (the paper's Fig. 8, 10, 11).

These sets carry no known spurious feature, so the bias label is the class itself: ``b = y``
and ``num_bias = num_classes``. Then

* every sample is bias-aligned: ``Split.conflicting`` (``b != y``) is all False, and the
  bias-conflicting training records (BC loss, BC loss ratio) are NaN, as for a set without
  BC samples;
* the groups present, ``y * num_bias + b = y * (K + 1)``, are exactly the K classes, so the
  worst-group accuracy is the worst class's accuracy;
* a bias-selectivity index equals the class-selectivity index.

(``b = 0`` with ``num_bias = 1`` would keep the groups but make ``conflicting`` mark every
sample outside class 0, which means nothing.)

Images are stored as uint8 in the dataset cache (see :mod:`lrsc.datasets.images`) and become
float32 in [0, 1] only for the requested ``n_train`` / ``n_test`` images. This module also
holds the helpers the naturalistic sets (:mod:`lrsc.datasets.naturalistic`) share: reading
image files at a size, size checks, and splits from uint8 arrays.
"""
from __future__ import annotations

import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from lrsc.datasets import Info, Split, register
from lrsc.datasets.images import Arrays, cached_arrays, ensure_cifar10, load_cifar10, resolve_data_root
from lrsc.errors import ConfigError

CIFAR_TRAIN_SIZE = 50000
CIFAR_TEST_SIZE = 10000
CIFAR100_FILES = ("train", "test")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


# ----- shared helpers -----

def check_size(name: str, key: str, n: int | None, available: int | None = None, what: str = "images") -> None:
    """``n`` must be None (all) or a positive integer, at most ``available`` when given."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"{name}: dataset_params.{key} must be a positive integer or None (all of them), got {n!r}")
    if n is not None and available is not None and n > available:
        raise ConfigError(f"{name}: dataset_params.{key}={n} exceeds the {available} {what} available; "
                          f"use {key} <= {available} (or None for all)")


def check_image_size(name: str, size: int) -> None:
    if size < 8:
        raise ConfigError(f"{name}: dataset_params.image_size must be at least 8 pixels, got {size}")


def file_memo(path: Path, read: Callable[[Path], object]) -> object:
    """``read(path)``, remembered while the file's size and modification time stay the same, so
    the checks a sweep runs for every point of its grid read each metadata file once. ``read``
    must be a module-level function (it is part of the memo's key) and its result is shared:
    callers must not modify it."""
    st = path.stat()
    return _memo(str(path), st.st_size, st.st_mtime_ns, read)


@lru_cache(maxsize=32)
def _memo(path: str, size: int, mtime: int, read: Callable[[Path], object]) -> object:
    return read(Path(path))


def read_image(path: Path, size: int) -> np.ndarray:
    """One image file as uint8 ``(3, size, size)``: RGB, its largest centred square, resized
    with PIL's (antialiased) bilinear filter. For CelebA's aligned 178 x 218 faces the square is
    the usual centred 178 x 178 crop."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster for big images
        img = img.convert("RGB")
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + s, top + s))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def read_images(paths: list[Path], size: int, name: str, layout: str) -> torch.Tensor:
    """The images at ``paths`` as uint8 ``(n, 3, size, size)``, read by a few threads (PIL
    releases the GIL while it decodes). A missing or unreadable file is a ConfigError naming it."""
    def one(path: Path) -> np.ndarray:
        try:
            return read_image(path, size)
        except (OSError, ValueError) as err:
            raise ConfigError(f"{name}: cannot read image {path} ({type(err).__name__}: {' '.join(str(err).split())}); "
                              f"expected {layout}") from None

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(paths), 4096):  # in chunks, so a million paths are not a million futures
            for i, arr in enumerate(pool.map(one, paths[start:start + 4096]), start):
                out[i] = arr
    return torch.from_numpy(out)


def pick(n_available: int, n: int | None, g: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` of ``n_available`` items drawn with ``g`` (all of them, shuffled, for None)."""
    return torch.randperm(n_available, generator=g)[:n_available if n is None else min(n, n_available)]


def splits_from_arrays(arrays: Arrays, num_classes: int, num_bias: int) -> tuple[Split, Split]:
    """Train and test :class:`Split` s from uint8 images ``x_<part>`` and int64 labels ``y_<part>``
    (and bias labels ``b_<part>``; without them ``b = y``, see the module docstring)."""
    splits = []
    for part in ("train", "test"):
        y = arrays[f"y_{part}"].long()
        b = arrays[f"b_{part}"].long() if f"b_{part}" in arrays else y.clone()
        splits.append(Split(arrays[f"x_{part}"].float().div_(255), y, b, num_classes=num_classes, num_bias=num_bias))
    return splits[0], splits[1]


def _warn_short_test(name: str, available: int, asked: int) -> None:
    if available < asked:
        warnings.warn(f"{name}: only {available} test images exist under the data root, fewer than the {asked} "
                      f"asked for; the test set uses those", stacklevel=4)


# ----- CIFAR-10 and CIFAR-100 -----

def ensure_cifar100(root: Path) -> None:
    """Make sure ``root/cifar-100-python`` holds CIFAR-100's python pickles ``train`` and ``test``:
    download them with torchvision when missing, else raise a one-line ConfigError."""
    if all((root / "cifar-100-python" / f).is_file() for f in CIFAR100_FILES):
        return
    from torchvision.datasets import CIFAR100

    try:
        CIFAR100(str(root), train=True, download=True)
    except Exception as err:  # any network or file error means the same to the user
        reason = " ".join(str(err).split())
        raise ConfigError(
            f"CIFAR-100 not found under data root {root} and could not be downloaded ({type(err).__name__}: {reason}). "
            "Put the files there in torchvision's layout (cifar-100-python/train, cifar-100-python/test: the python "
            "pickles), or pass data_root=... / set LRSC_DATA to a folder that has them."
        ) from None


def load_cifar100(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-100 images, uint8 ``(n, 3, 32, 32)``, and fine labels (100 classes), int64 ``(n,)``.

    Read from the python pickles directly, as :func:`~lrsc.datasets.images.load_cifar10` does;
    checked by shape and label range (any number of images is accepted).
    """
    ensure_cifar100(root)
    path = root / "cifar-100-python" / ("train" if train else "test")
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    x = np.asarray(batch[b"data"], dtype=np.uint8)
    y = np.asarray(batch[b"fine_labels"], dtype=np.int64)
    if not (x.ndim == 2 and x.shape[1] == 3 * 32 * 32 and len(x) == len(y) > 0 and 0 <= y.min() and y.max() < 100):
        raise ConfigError(f"CIFAR-100 pickle {path} is malformed: images {x.shape}, {len(y)} labels; "
                          "replace it with the official python-version file")
    return torch.from_numpy(x.reshape(-1, 3, 32, 32)), torch.from_numpy(y)


def _count_cifar100(path: Path) -> int:
    return len(load_cifar100(path.parent.parent, True)[1])


def _cifar100_size(root: Path) -> int:
    return file_memo(root / "cifar-100-python" / "train", _count_cifar100)


# name -> (ensure the files, number of training images, loader, classes)
_CIFAR = {
    "cifar10": (ensure_cifar10, lambda root: CIFAR_TRAIN_SIZE, load_cifar10, 10),
    "cifar100": (ensure_cifar100, _cifar100_size, load_cifar100, 100),
}


def _cifar_check(name: str) -> Callable[[dict], Info]:
    ensure, train_size, _, classes = _CIFAR[name]

    def check(p: dict) -> Info:
        carve = p["test_from_train"]
        if not isinstance(carve, int) or carve < 0:
            raise ConfigError(f"{name}: dataset_params.test_from_train must be an integer >= 0 (0: the official test "
                              f"set), got {carve!r}")
        check_size(name, "n_train", p["n_train"])
        check_size(name, "n_test", p["n_test"], carve or None, "held-out images (test_from_train)")
        root = resolve_data_root(p["data_root"])
        ensure(root)
        available = train_size(root)
        if carve >= available:
            raise ConfigError(f"{name}: dataset_params.test_from_train={carve} leaves no training images of the "
                              f"{available}; use test_from_train < {available}")
        check_size(name, "n_train", p["n_train"], available - carve,
                   "training images" + (f" left after test_from_train={carve}" if carve else ""))
        return Info(p["n_train"] or available - carve, (3, 32, 32), classes)

    return check


def _cifar_arrays(name: str, seed: int, n_train: int | None, n_test: int | None, test_from_train: int,
                  data_root: str) -> Arrays:
    load = _CIFAR[name][2]

    def make(root: Path, g: torch.Generator) -> Arrays:
        x, y = load(root, True)
        order = torch.randperm(len(y), generator=g)
        held, pool = order[:test_from_train], order[test_from_train:]
        train = pool[pick(len(pool), n_train, g)]
        if test_from_train:
            xt, yt, test = x, y, held[pick(len(held), n_test, g)]
        else:
            xt, yt = load(root, False)
            _warn_short_test(name, len(yt), n_test or CIFAR_TEST_SIZE)
            test = pick(len(yt), n_test, g)
        return {"x_train": x[train].clone(), "y_train": y[train].clone(),
                "x_test": xt[test].clone(), "y_test": yt[test].clone()}

    params = dict(n_train=n_train, n_test=n_test, test_from_train=test_from_train, data_root=data_root)
    return cached_arrays(name, seed, params, make)


@register("cifar10", check=_cifar_check("cifar10"))
def cifar10(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None, test_from_train: int = 0,
            data_root: str = "") -> tuple[Split, Split]:
    """CIFAR-10 as standard classification: images float32 in [0, 1], ``(n, 3, 32, 32)``; 10 classes;
    ``b = y`` (no spurious feature, see the module docstring).

    ``n_train`` / ``n_test``: number of images drawn with the seed (None: all).
    ``test_from_train``: when > 0, the test set is that many training images held out with the
    seed (never in the training set; ``n_test`` then draws from them) instead of the official
    test batch. ``shared/data`` holds only the first 1000 official test images: a larger
    ``n_test`` there gives those 1000 with a warning, and ``test_from_train`` gives a full-size
    held-out set. ``data_root``: folder holding ``cifar-10-batches-py`` (empty: ``$LRSC_DATA``,
    else the user cache directory).
    """
    return splits_from_arrays(_cifar_arrays("cifar10", seed, n_train, n_test, test_from_train, data_root), 10, 10)


@register("cifar100", check=_cifar_check("cifar100"))
def cifar100(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None, test_from_train: int = 0,
             data_root: str = "") -> tuple[Split, Split]:
    """CIFAR-100 (fine labels) as standard classification: images float32 in [0, 1],
    ``(n, 3, 32, 32)``; 100 classes; ``b = y`` (see the module docstring).

    Parameters as :func:`cifar10`; ``data_root`` holds ``cifar-100-python/{train,test}``
    (torchvision downloads it when missing and the network allows).
    """
    return splits_from_arrays(_cifar_arrays("cifar100", seed, n_train, n_test, test_from_train, data_root), 100, 100)


# ----- ImageNet-1k -----

IMAGENET_LAYOUT = ("ImageFolder layout: imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG, one folder per "
                   "class in both (torchvision.datasets.ImageNet prepares val that way from the official tarballs)")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _imagenet_classes(root: Path) -> list[str]:
    base = root / "imagenet"
    for part in ("train", "val"):
        if not (base / part).is_dir():
            raise ConfigError(f"imagenet: folder {base / part} not found under data root {root}; expected the "
                              f"{IMAGENET_LAYOUT}; pass data_root=... / set LRSC_DATA to a folder that has it")
    classes = sorted(d.name for d in (base / "train").iterdir() if d.is_dir())
    val = sorted(d.name for d in (base / "val").iterdir() if d.is_dir())
    if not classes or classes != val:
        raise ConfigError(f"imagenet: {base / 'train'} and {base / 'val'} must hold the same non-empty set of class "
                          f"folders ({len(classes)} and {len(val)} found); expected the {IMAGENET_LAYOUT}")
    return classes


def _check_imagenet(p: dict) -> Info:
    check_size("imagenet", "n_per_class", p["n_per_class"], what="training images per class")
    check_size("imagenet", "n_test_per_class", p["n_test_per_class"], what="validation images per class")
    check_image_size("imagenet", p["image_size"])
    classes = _imagenet_classes(resolve_data_root(p["data_root"]))
    check_size("imagenet", "n_classes", p["n_classes"], len(classes), "class folders")
    k = p["n_classes"] or len(classes)
    if p["n_per_class"] is None:  # all images: count them (1.3M files, so once per state of the folder)
        counts = file_memo(resolve_data_root(p["data_root"]) / "imagenet" / "train", _class_counts)
        return Info(sum(counts[:k]), (3, p["image_size"], p["image_size"]), k)
    return Info(p["n_per_class"] * k, (3, p["image_size"], p["image_size"]), k)


def _class_counts(train: Path) -> list[int]:
    """Number of images in each class folder of ``train``, in sorted order."""
    return [len(_image_files(d)) for d in sorted(d for d in train.iterdir() if d.is_dir())]


@register("imagenet", check=_check_imagenet)
def imagenet(*, seed: int = 0, n_per_class: int | None = None, n_test_per_class: int | None = None,
             n_classes: int | None = None, image_size: int = 64, data_root: str = "") -> tuple[Split, Split]:
    """ImageNet-1k from an ImageFolder tree: images float32 in [0, 1], ``(n, 3, image_size,
    image_size)``; ``b = y`` (see the module docstring). Meant for the full profile only: it
    needs the dataset on disk (about 150 GB) and reads every chosen JPEG once.

    ``n_per_class``: training images drawn with the seed from each class (None: all, about
    1300; at ``image_size`` 64 that is 15.7 GB as uint8 and four times that as the float32
    Split, so set it to fit memory: 100 per class is 1.6 / 6.3 GB). ``n_test_per_class``: validation images per class
    (None: all 50). ``n_classes``: use the first ``n_classes`` classes in sorted wnid order
    (None: all 1000). ``image_size``: side of the centred square crop after resizing.
    ``data_root``: folder holding ``imagenet/train/<wnid>/`` and ``imagenet/val/<wnid>/``
    (not downloadable: ImageNet needs a licence). A class with fewer images than asked for is
    a ConfigError.
    """
    def make(root: Path, g: torch.Generator) -> Arrays:
        classes = _imagenet_classes(root)[:n_classes]
        arrays: Arrays = {}
        for part, n in (("train", n_per_class), ("test", n_test_per_class)):
            paths, labels = [], []
            for k, wnid in enumerate(classes):
                files = _image_files(root / "imagenet" / ("train" if part == "train" else "val") / wnid)
                if n is not None and len(files) < n:
                    raise ConfigError(f"imagenet: class folder {wnid} of {part} has {len(files)} images, fewer "
                                      f"than the {n} asked for per class; lower n_per_class / n_test_per_class")
                paths += [files[i] for i in pick(len(files), n, g).sort().values]
                labels += [k] * (len(files) if n is None else n)
            arrays[f"x_{part}"] = read_images(paths, image_size, "imagenet", IMAGENET_LAYOUT)
            arrays[f"y_{part}"] = torch.tensor(labels, dtype=torch.int64)
        return arrays

    params = dict(n_per_class=n_per_class, n_test_per_class=n_test_per_class, n_classes=n_classes,
                  image_size=image_size, data_root=data_root)
    arrays = cached_arrays("imagenet", seed, params, make)
    k = len(_imagenet_classes(resolve_data_root(data_root))[:n_classes])
    return splits_from_arrays(arrays, k, k)
