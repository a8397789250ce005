"""Naturalistic spurious correlations: CelebA and Waterbirds (the paper's Fig. 7 and
its supplement's Waterbirds figure), read from their usual on-disk layouts.

Both have two classes and a binary spurious attribute, so four groups ``(y, b)``; the
correlation is the one the data has ("natural" rho), and the metric the paper reports is
the worst-group test accuracy. ``b`` is coded so that ``b == y`` on the majority pairing,
which makes ``Split.conflicting`` the minority groups' samples:

* Waterbirds (Sagawa et al. 2020): ``y`` = 1 for a waterbird, ``b`` = ``place``, 1 for a
  water background. The training set is 95% aligned; the test set is balanced over places
  within each class.
* CelebA, ``target="blond"`` (the literature's usual task, Sagawa et al. 2020): ``y`` = Blond_Hair, ``b`` = 1 - Male (1 = female). Blond hair goes with women:
  the rarest group is blond men (about 1% of the training set).
* CelebA, ``target="gender"`` (the task the paper's text describes: gender the core, hair
  colour the spurious feature): ``y`` = Male, ``b`` = 1 - Blond_Hair (1 = not blond), so that
  blond men and non-blond women are the conflicting groups.

Images are their largest centred square resized to ``image_size`` (default 64, for CPU
runs; pretrained Swin-T expects 224), stored uint8 in the dataset cache and float32 in
[0, 1] in the Split. Official splits: train and test (the validation split is not used).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from lrsc.datasets import Info, Split, register
from lrsc.datasets.images import Arrays, cached_arrays, resolve_data_root
from lrsc.datasets.standard import (check_image_size, check_size, file_memo, pick, read_images,
                                    splits_from_arrays)
from lrsc.errors import ConfigError

# ----- CelebA -----

CELEBA_LAYOUT = ("torchvision's CelebA layout: celeba/img_align_celeba/<000001.jpg ...>, celeba/list_attr_celeba.txt, "
                 "celeba/list_eval_partition.txt")
CELEBA_TARGETS = {"blond": ("Blond_Hair", "Male"), "gender": ("Male", "Blond_Hair")}  # target -> (y, spurious)
CELEBA_PARTITIONS = {"train": 0, "test": 2}  # list_eval_partition.txt: 0 train, 1 valid, 2 test


def _read_celeba(attr_file: Path) -> pd.DataFrame:
    """One row per image (index: file name) with its partition and the two attributes used, as 0/1."""
    base = attr_file.parent
    attr = pd.read_csv(base / "list_attr_celeba.txt", sep=r"\s+", skiprows=1)  # the header row is one name short:
    missing = {"Blond_Hair", "Male"} - set(attr.columns)                       # pandas makes the file names the index
    if missing:
        raise ConfigError(f"celeba: {base / 'list_attr_celeba.txt'} lacks the attribute column(s) {sorted(missing)}; "
                          f"expected {CELEBA_LAYOUT}")
    part = pd.read_csv(base / "list_eval_partition.txt", sep=r"\s+", header=None, names=["file", "partition"],
                       index_col=0)
    table = (attr[["Blond_Hair", "Male"]] > 0).astype(np.int64).join(part, how="inner")
    if len(table) != len(attr):
        raise ConfigError(f"celeba: {len(attr) - len(table)} images of list_attr_celeba.txt have no line in "
                          f"list_eval_partition.txt under {base}; expected {CELEBA_LAYOUT}")
    return table


def ensure_celeba(root: Path) -> pd.DataFrame:
    """CelebA's table of ``root/celeba`` (see :func:`_read_celeba`), downloaded with torchvision
    when missing (Google Drive, often over quota), else a one-line ConfigError."""
    base = root / "celeba"
    needed = [base / "img_align_celeba", base / "list_attr_celeba.txt", base / "list_eval_partition.txt"]
    if not all(p.exists() for p in needed):
        from torchvision.datasets import CelebA

        try:
            CelebA(str(root), split="all", target_type="attr", download=True)
        except Exception as err:  # any network or file error means the same to the user
            raise ConfigError(
                f"CelebA not found under data root {root} (no {', '.join(p.name for p in needed if not p.exists())} "
                f"in {base}) and could not be downloaded ({type(err).__name__}: {' '.join(str(err).split())}). "
                f"Put it there in {CELEBA_LAYOUT} (from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), "
                "or pass data_root=... / set LRSC_DATA to a folder that has it."
            ) from None
    return file_memo(base / "list_attr_celeba.txt", _read_celeba)


def _check_split_table(name: str, p: dict, read_table: Callable, column: str, splits: dict) -> Info:
    """The check shared by the metadata-table datasets: sizes and image size first, then the
    table under the data root (``read_table(root)``), whose ``column`` holds ``splits``' ids."""
    check_size(name, "n_train", p["n_train"])
    check_size(name, "n_test", p["n_test"])
    check_image_size(name, p["image_size"])
    table = read_table(resolve_data_root(p["data_root"]))
    available = int((table[column] == splits["train"]).sum())
    check_size(name, "n_train", p["n_train"], available, "training images")
    check_size(name, "n_test", p["n_test"], int((table[column] == splits["test"]).sum()), "test images")
    return Info(p["n_train"] or available, (3, p["image_size"], p["image_size"]), 2)


def _check_celeba(p: dict) -> Info:
    if p["target"] not in CELEBA_TARGETS:
        raise ConfigError(f"celeba: dataset_params.target must be one of {', '.join(map(repr, CELEBA_TARGETS))}, "
                          f"got {p['target']!r}")
    return _check_split_table("celeba", p, ensure_celeba, "partition", CELEBA_PARTITIONS)


@register("celeba", check=_check_celeba)
def celeba(*, seed: int = 0, target: str = "blond", n_train: int | None = None, n_test: int | None = None,
           image_size: int = 64, data_root: str = "") -> tuple[Split, Split]:
    """CelebA with a natural spurious correlation: images float32 in [0, 1], ``(n, 3, image_size,
    image_size)``; 2 classes, 2 bias values, 4 groups (see the module docstring for the coding).

    ``target``: ``"blond"`` (y = blond hair, b = female; the literature's choice) or
    ``"gender"`` (y = male, b = not blond; the paper's text). ``n_train`` / ``n_test``: images
    drawn with the seed from the official train (162770) / test (19962) partitions (None: all).
    ``data_root``: folder holding ``celeba/`` in torchvision's layout.
    """
    def make(root: Path, g: torch.Generator) -> Arrays:
        table = ensure_celeba(root)
        y_attr, b_attr = CELEBA_TARGETS[target]
        arrays: Arrays = {}
        for part, n in (("train", n_train), ("test", n_test)):
            rows = table[table["partition"] == CELEBA_PARTITIONS[part]]
            rows = rows.iloc[pick(len(rows), n, g).numpy()]
            arrays[f"x_{part}"] = read_images([root / "celeba" / "img_align_celeba" / f for f in rows.index],
                                              image_size, "celeba", CELEBA_LAYOUT)
            arrays[f"y_{part}"] = torch.from_numpy(rows[y_attr].to_numpy(dtype=np.int64, copy=True))
            arrays[f"b_{part}"] = torch.from_numpy(1 - rows[b_attr].to_numpy(dtype=np.int64))
        return arrays

    params = dict(target=target, n_train=n_train, n_test=n_test, image_size=image_size, data_root=data_root)
    return splits_from_arrays(cached_arrays("celeba", seed, params, make), 2, 2)


# ----- Waterbirds -----

WATERBIRDS_DIR = "waterbirds_v1.0"
WATERBIRDS_COLUMNS = ("img_id", "img_filename", "y", "split", "place", "place_filename")
WATERBIRDS_LAYOUT = (f"WILDS' layout: {WATERBIRDS_DIR}/metadata.csv with columns {', '.join(WATERBIRDS_COLUMNS)} "
                     f"(split 0/1/2 = train/val/test) and each image at {WATERBIRDS_DIR}/<img_filename>")
WATERBIRDS_URL = "https://worksheets.codalab.org/rest/bundles/0x505056d5cdea4e4eaa0e242cbfe2daa4/contents/blob/"
WATERBIRDS_SPLITS = {"train": 0, "test": 2}


def _read_waterbirds(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = [c for c in WATERBIRDS_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"waterbirds: {path} lacks the column(s) {', '.join(missing)}; expected {WATERBIRDS_LAYOUT}")
    return table


def waterbirds_table(root: Path) -> pd.DataFrame:
    """``metadata.csv`` of ``root/waterbirds_v1.0``, or a one-line ConfigError naming the folder
    and the layout (WILDS is not a dependency; its archive is the source)."""
    path = root / WATERBIRDS_DIR / "metadata.csv"
    if not path.is_file():
        raise ConfigError(
            f"Waterbirds not found: no {path} under data root {root}. Expected {WATERBIRDS_LAYOUT}. Download WILDS' "
            f"waterbirds_v1.0.tar.gz ({WATERBIRDS_URL}) and extract it in {root}, or pass data_root=... / set "
            "LRSC_DATA to a folder that has it."
        )
    return file_memo(path, _read_waterbirds)


def _check_waterbirds(p: dict) -> Info:
    return _check_split_table("waterbirds", p, waterbirds_table, "split", WATERBIRDS_SPLITS)


@register("waterbirds", check=_check_waterbirds)
def waterbirds(*, seed: int = 0, n_train: int | None = None, n_test: int | None = None, image_size: int = 64,
               data_root: str = "") -> tuple[Split, Split]:
    """Waterbirds: images float32 in [0, 1], ``(n, 3, image_size, image_size)``; y = bird type
    (1 waterbird), b = place (1 water); 4 groups (see the module docstring).

    ``n_train`` / ``n_test``: images drawn with the seed from the official train (4795) / test
    (5794) splits (None: all). ``data_root``: folder holding ``waterbirds_v1.0/`` as WILDS
    extracts it.
    """
    def make(root: Path, g: torch.Generator) -> Arrays:
        table = waterbirds_table(root)
        arrays: Arrays = {}
        for part, n in (("train", n_train), ("test", n_test)):
            rows = table[table["split"] == WATERBIRDS_SPLITS[part]]
            rows = rows.iloc[pick(len(rows), n, g).numpy()]
            arrays[f"x_{part}"] = read_images([root / WATERBIRDS_DIR / f for f in rows["img_filename"]], image_size,
                                              "waterbirds", WATERBIRDS_LAYOUT)
            arrays[f"y_{part}"] = torch.from_numpy(rows["y"].to_numpy(dtype=np.int64, copy=True))
            arrays[f"b_{part}"] = torch.from_numpy(rows["place"].to_numpy(dtype=np.int64, copy=True))
        return arrays

    params = dict(n_train=n_train, n_test=n_test, image_size=image_size, data_root=data_root)
    return splits_from_arrays(cached_arrays("waterbirds", seed, params, make), 2, 2)
