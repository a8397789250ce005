"""Shared machinery of the image datasets: where the raw data lives, how MNIST and
CIFAR-10 are read, how labels are drawn, and the on-disk cache of built datasets.

Data root: the builder's ``data_root`` argument, else the environment variable
``LRSC_DATA``, else the user cache directory (``$XDG_CACHE_HOME/lrsc`` or
``~/.cache/lrsc``). It uses torchvision's layout: ``MNIST/raw/*-ubyte`` and
``cifar-10-batches-py/``. Missing files are downloaded once with torchvision; where
that fails (no network) a :class:`ConfigError` says what to put where.

Cache: a built dataset is stored as uint8 tensors in
``<cache>/<name>-<hash>.pt``, the hash covering the builder's parameters, the seed
and the resolved data root, so a sweep builds each dataset once. ``<cache>`` is the
environment variable ``LRSC_CACHE`` if set, else ``<user cache dir>/lrsc_cache``.
It is deliberately not under the data root, which may be read-only or shared (and
``shared/data`` has a size budget); tests point ``LRSC_CACHE`` at a temporary folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from lrsc.datasets import Info, Split, biased_bias, check_rho
from lrsc.errors import ConfigError
from lrsc.seeding import generator
from lrsc.store import Unwritable, atomic

# Bump when the stored arrays of any image dataset change meaning, to orphan old caches.
CACHE_VERSION = 1
NUM_CLASSES = 10
OFFICIAL_TEST_SIZE = 10000  # both MNIST and CIFAR-10
Arrays = dict[str, torch.Tensor]


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrsc"


def resolve_data_root(data_root: str) -> Path:
    """``data_root`` if given, else ``$LRSC_DATA``, else the user cache directory."""
    return Path(data_root or os.environ.get("LRSC_DATA") or user_cache_dir()).expanduser().resolve()


def cache_dir() -> Path:
    """Folder of built datasets: ``$LRSC_CACHE``, else ``<user cache dir>/lrsc_cache``."""
    return Path(os.environ.get("LRSC_CACHE") or user_cache_dir() / "lrsc_cache").expanduser()


def _missing(root: Path, what: str, layout: str, err: Exception) -> ConfigError:
    reason = " ".join(str(err).split())  # one line: download errors span several
    return ConfigError(
        f"{what} not found under data root {root} and could not be downloaded ({type(err).__name__}: {reason}). "
        f"Put the files there in torchvision's layout ({layout}), or pass data_root=... / set LRSC_DATA "
        "to a folder that has them (e.g. shared/data)."
    )


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@contextmanager
def _as_found_on_failure(root: Path) -> Iterator[None]:
    """Remove whatever the block added under ``root`` (``root`` itself included) if it raises: a
    failed download must leave the user's data folder as it was."""
    before = set(root.rglob("*")) if root.exists() else None
    try:
        yield
    except BaseException:
        added = [root] if before is None else sorted(set(root.rglob("*")) - before, reverse=True)
        for path in added:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        raise


def ensure_mnist(root: Path) -> None:
    """Make sure ``root/MNIST/raw`` holds MNIST: download it with torchvision when missing,
    else raise a ConfigError that names the folder and the files it needs (leaving the folder
    as it was)."""
    if all((root / "MNIST" / "raw" / f).is_file() for f in MNIST_FILES):
        return
    from torchvision.datasets import MNIST

    try:
        with _as_found_on_failure(root):
            for train in (True, False):
                MNIST(str(root), train=train, download=True)
    except Exception as err:  # any network or file error means the same to the user
        raise _missing(root, "MNIST", "MNIST/raw/" + ", ".join(MNIST_FILES), err) from None


def ensure_cifar10(root: Path) -> None:
    """Make sure ``root/cifar-10-batches-py`` holds CIFAR-10's python batches: download them
    with torchvision when missing, else raise a ConfigError naming the folder and files
    (leaving the folder as it was)."""
    if all((root / "cifar-10-batches-py" / f).is_file() for f in CIFAR10_FILES):
        return
    from torchvision.datasets import CIFAR10

    try:
        with _as_found_on_failure(root):
            CIFAR10(str(root), train=True, download=True)
    except Exception as err:  # any network or file error means the same to the user
        raise _missing(root, "CIFAR-10", "cifar-10-batches-py/data_batch_1..5, test_batch", err) from None


def mnist_test_size(root: Path) -> int:
    """How many test images ``root``'s MNIST holds (read from the IDX labels file's header)."""
    with open(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", "rb") as fh:
        return int.from_bytes(fh.read(8)[4:], "big")


def cifar10_test_size(root: Path) -> int:
    """How many test images ``root``'s CIFAR-10 test batch holds (a local copy may hold fewer than 10000)."""
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        return len(pickle.load(fh, encoding="bytes")[b"labels"])


def load_mnist(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images, uint8 ``(n, 28, 28)``, and labels, int64 ``(n,)``."""
    from torchvision.datasets import MNIST

    ensure_mnist(root)
    ds = MNIST(str(root), train=train, download=False)
    return ds.data, ds.targets.long()


def load_cifar10(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 images, uint8 ``(n, 3, 32, 32)``, and labels, int64 ``(n,)``.

    The python pickles are read directly rather than through torchvision's CIFAR10,
    whose md5 check rejects rebuilt but pixel-exact copies such as ``shared/data``'s;
    they are checked by shape and label counts instead. A test batch with fewer than
    10000 images is accepted (``shared/data`` holds the first 1000).
    """
    ensure_cifar10(root)
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for name in CIFAR10_FILES[:-1] if train else CIFAR10_FILES[-1:]:
        with open(folder / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    counts = np.bincount(y, minlength=NUM_CLASSES)
    ok = x.ndim == 2 and x.shape[1] == 3 * 32 * 32 and len(x) == len(y) and len(counts) == NUM_CLASSES
    ok = ok and (len(y) == 50000 and (counts == 5000).all() if train else 0 < len(y) <= OFFICIAL_TEST_SIZE)
    if not ok:
        raise ConfigError(
            f"CIFAR-10 {'training' if train else 'test'} batches under {folder} are malformed: "
            f"images {x.shape}, label counts {counts.tolist()}; replace them with the official python-version files"
        )
    return torch.from_numpy(x.reshape(-1, 3, 32, 32)), torch.from_numpy(y)


# The raw sources the image datasets draw from: how to make sure one is under a data root, how
# many training images it has, and how many test images a data root holds.
SOURCES: dict[str, tuple[Callable[[Path], None], int, Callable[[Path], int]]] = {
    "mnist": (ensure_mnist, 60000, mnist_test_size), "cifar10": (ensure_cifar10, 50000, cifar10_test_size)}


def image_check(name: str, sources: tuple[str, ...], input_shape: tuple[int, ...],
                extra: Callable[[dict], None] = lambda p: None) -> Callable[[dict], Info]:
    """The registry check of an image dataset whose core images come from ``sources[0]`` (and
    its bias images from the others): rho, the sizes against the core source, ``extra``, and
    the data root holding every source (downloaded when missing and the network allows)."""

    def check(p: dict) -> Info:
        check_rho(name, p["rho"])
        for key in ("n_train", "n_test"):
            n = p[key]
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
                raise ConfigError(f"{name}: dataset_params.{key} must be a positive integer or None (the full split), "
                                  f"got {n!r}")
        available = SOURCES[sources[0]][1]
        if p["n_train"] is not None and p["n_train"] > available:
            raise ConfigError(f"{name}: dataset_params.n_train={p['n_train']} exceeds the {available} training images "
                              f"of {sources[0]}; use n_train <= {available}")
        extra(p)
        root = resolve_data_root(p["data_root"])
        for source in sources:
            SOURCES[source][0](root)
        tests = SOURCES[sources[0]][2](root)
        if p["n_test"] is not None and p["n_test"] > tests:
            raise ConfigError(f"{name}: dataset_params.n_test={p['n_test']} exceeds the {tests} test images of "
                              f"{sources[0]} under {root}; use n_test <= {tests}, or n_test: null for all of them")
        return Info(p["n_train"] or available, input_shape, NUM_CLASSES)

    return check


def subset(n_available: int, n: int | None, g: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` source images chosen with ``g`` (all of them, shuffled, for None).

    A test set that is short (a partial CIFAR-10 test batch) is clipped, and
    :func:`to_splits` warns about it; training sizes are checked by :func:`image_check`.
    """
    return torch.randperm(n_available, generator=g)[: n_available if n is None else min(n, n_available)]


def unbiased_bias(n: int, g: torch.Generator) -> torch.Tensor:
    """Bias labels independent of the class: a random permutation of ``0..K-1`` repeated,
    so ``b`` is exactly uniform (up to ``n mod K``) and carries no information on ``y``."""
    return torch.randperm(n, generator=g) % NUM_CLASSES


def draw_of_class(labels: torch.Tensor, wanted: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """For each entry of ``wanted``, the index of a uniformly drawn source image whose
    label equals it (with replacement); shape ``wanted.shape``."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    starts = torch.cumsum(counts, 0) - counts
    offset = (torch.rand(wanted.shape, generator=g, dtype=torch.float64) * counts[wanted]).long()
    return order[starts[wanted] + offset]


def _save_atomic(arrays: Arrays, path: Path) -> None:
    # Parallel sweep workers may build the same dataset; write-then-rename means a
    # reader never sees a half-written file, and the last writer simply wins.
    try:
        with atomic(path) as tmp:
            torch.save(arrays, tmp)
    except (Unwritable, OSError) as err:  # a cache: without it the dataset is rebuilt
        warnings.warn(f"could not cache the dataset at {path} ({err}); it will be rebuilt next time", stacklevel=5)


def cached_arrays(name: str, seed: int, params: dict[str, Any], make: Callable[[Path, torch.Generator], Arrays]) -> Arrays:
    """The uint8 arrays of dataset ``name``, from the cache or built by ``make(root, g)``.

    ``params`` are the builder's parameters; ``params["data_root"]`` is resolved first.
    ``make`` returns ``x_train, y_train, b_train, x_test, y_test, b_test`` as uint8.
    """
    root = resolve_data_root(params["data_root"])
    key = json.dumps({"name": name, "seed": seed, "version": CACHE_VERSION, **params, "data_root": str(root)},
                     sort_keys=True)
    path = cache_dir() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a damaged or foreign file is rebuilt rather than trusted
            pass
    arrays = make(root, generator(seed, f"dataset/{name}"))
    _save_atomic(arrays, path)
    return arrays


# compose(images[idx], b, g, root, train) -> the stored uint8 images of one part, given the
# drawn core images and their bias labels.
Compose = Callable[[torch.Tensor, torch.Tensor, torch.Generator, Path, bool], torch.Tensor]


def labelled_parts(name: str, load: Callable[[Path, bool], tuple[torch.Tensor, torch.Tensor]], rho: float,
                   n_train: int | None, n_test: int | None, compose: Compose) -> Callable[[Path, torch.Generator], Arrays]:
    """The ``make`` of :func:`cached_arrays` shared by the image datasets: for the train and
    test parts, a subset of ``load``'s images (the core feature) with their labels ``y``, bias
    labels ``b`` (``rho``-biased in train, uniform and independent in test), and the images
    ``compose`` builds from them."""

    def make(root: Path, g: torch.Generator) -> Arrays:
        arrays = {}
        for part, n in (("train", n_train), ("test", n_test)):
            train = part == "train"
            images, labels = load(root, train)
            idx = subset(len(labels), n, g)
            y = labels[idx]
            b = biased_bias(y, NUM_CLASSES, rho, g) if train else unbiased_bias(len(y), g)
            arrays.update({f"x_{part}": compose(images[idx], b, g, root, train),
                           f"y_{part}": y.to(torch.uint8), f"b_{part}": b.to(torch.uint8)})
        return arrays

    return make


def build_image(name: str, seed: int, params: dict[str, Any], load: Callable[[Path, bool], tuple[torch.Tensor, torch.Tensor]],
                compose: Compose, regions: dict[str, torch.Tensor] | None = None) -> tuple[Split, Split]:
    """The train and test splits of image dataset ``name`` with its builder's ``params`` (``rho``,
    ``n_train``, ``n_test``, ``data_root`` and its own), built by :func:`labelled_parts` from
    ``load``'s images and ``compose``, and cached (:func:`cached_arrays`)."""
    make = labelled_parts(name, load, params["rho"], params["n_train"], params["n_test"], compose)
    return to_splits(name, cached_arrays(name, seed, params, make), params["n_test"], regions)


def to_splits(name: str, arrays: Arrays, n_test: int | None, regions: dict[str, torch.Tensor] | None = None
              ) -> tuple[Split, Split]:
    """Train and test :class:`Split` s from cached uint8 arrays: images become float32
    in [0, 1] with 3 channels (grey images are repeated), labels int64."""
    asked = OFFICIAL_TEST_SIZE if n_test is None else n_test
    if len(arrays["y_test"]) < asked:
        warnings.warn(f"{name}: only {len(arrays['y_test'])} test images exist under the data root, fewer than "
                      f"the {asked} asked for; the unbiased test set uses those", stacklevel=4)
    splits = []
    for part in ("train", "test"):
        x = arrays[f"x_{part}"].float().div_(255)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        y, b = arrays[f"y_{part}"].long(), arrays[f"b_{part}"].long()
        splits.append(Split(x, y, b, num_classes=NUM_CLASSES, num_bias=NUM_CLASSES, regions=dict(regions or {})))
    return splits[0], splits[1]


def halves(shape: tuple[int, ...], dim: int, first: str, second: str) -> dict[str, torch.Tensor]:
    """Two boolean masks of ``shape`` splitting it in half along ``dim``: ``{first, second}``."""
    mask = torch.zeros(shape, dtype=torch.bool)
    mask.narrow(dim, 0, shape[dim] // 2).fill_(True)
    return {first: mask, second: ~mask}
