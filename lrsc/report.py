"""Summaries of a collected sweep for the book: which LRs are comparable, tables over seeds.

The paper compares models trained to 100% training accuracy, so a learning rate is
*comparable* only when every seed converged and none diverged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import datasets, models

METRICS = ("test_acc", "worst_group_acc", "prunability", "act_comp", "act_sparsity", "max_bc_loss_ratio")


def config_values(ds: xr.Dataset) -> dict:
    """The scalar settings of a collected sweep (dataset, model, training and metric
    parameters, by their last name) from the config stored with it, for quoting in prose."""
    cfg = json.loads(ds.attrs["config"])
    defaults = {k: p.default for k, p in {**datasets.params_of(cfg["dataset"]), **models.params_of(cfg["model"])}.items()}
    given = {k: v for section in ("dataset_params", "model_params", "train", "metrics") for k, v in cfg[section].items()}
    return {k: v for k, v in {**defaults, **given}.items() if isinstance(v, (bool, int, float, str))}


def comparable_lrs(ds: xr.Dataset, axis: str = "lr") -> list[float]:
    """LRs (or values of another swept ``axis``) at which every seed reached 100% training
    accuracy and none diverged, ascending."""
    ok = (ds.converged & ~ds.diverged).all("seed")
    return sorted(float(v) for v in ds[axis].values[ok.values])


def summary_table(ds: xr.Dataset, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """One row per LR: the seed mean of each metric, one number per cell, then the mean SGD
    steps, how many seeds converged (``conv.``, reached 100% training accuracy) and diverged
    (``div.``), and whether the LR is compared (see :func:`comparable_lrs`).

    Short headers with units so the table fits a page: accuracies in % (one decimal), with the
    seed standard deviation of unbiased accuracy beside it (``± sd``); the other metrics
    (three decimals) are prunability, activation compressibility and sparsity, and the
    largest BC loss ratio; their seed spread is the band of the figures.
    """
    headers = {"test_acc": "acc. (%)", "worst_group_acc": "worst group (%)", "prunability": "prun.",
               "act_comp": "act. comp.", "act_sparsity": "act. spars.", "max_bc_loss_ratio": "max BC ratio"}
    rows = {}
    comparable = set(comparable_lrs(ds))
    for lr in ds.lr.values:
        sel = ds.sel(lr=lr)
        row = {}
        for m in metrics:
            if m not in ds:
                continue
            percent = m in ("test_acc", "worst_group_acc")
            scale, digits = (100, 1) if percent else (1, 3)
            row[headers.get(m, m)] = round(scale * float(sel[m].mean()), digits)
            if m == "test_acc":
                row["± sd"] = round(scale * float(sel[m].std()), digits)
        row["steps"] = int(sel.steps.mean())
        row["conv."] = f"{int(sel.converged.sum())}/{sel.sizes['seed']}"
        row["div."] = int(sel.diverged.sum())
        row["compared"] = "yes" if float(lr) in comparable else "no"
        rows[float(lr)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("LR")


def endpoints(ds: xr.Dataset, metric: str) -> tuple[float, float, float, float]:
    """``(lr_low, mean_low, lr_high, mean_high)``: seed means of ``metric`` at the smallest and
    largest comparable LR. Raises ValueError when no LR is comparable."""
    lrs = comparable_lrs(ds)
    if not lrs:
        raise ValueError("no learning rate has all seeds converged; raise train.max_steps or change the grid")
    mean = ds[metric].mean("seed")
    return lrs[0], float(mean.sel(lr=lrs[0])), lrs[-1], float(mean.sel(lr=lrs[-1]))


def rank_correlation(ds: xr.Dataset, metric: str, axis: str = "lr") -> float:
    """Spearman correlation between LR (or ``axis``) and the seed mean of ``metric`` over comparable values."""
    lrs = comparable_lrs(ds, axis)
    mean = ds[metric].mean("seed").sel({axis: lrs}).to_series()
    # Spearman = Pearson on ranks (pandas' method="spearman" would pull in scipy for this alone).
    return float(pd.Series(lrs, index=mean.index).rank().corr(mean.rank()))


# The paper's Tab. 1 (supplement D.3, "Value Ranges for Figures"): the min. and max. of each
# variable over the LR range of each dataset x model, as printed. Test accuracy is in %.
# Keys use lrsc's dataset and model names; two rows have no lrsc counterpart
# (Swin-T on CelebA, ResNet50 trained with PSGD) and keep descriptive names.
PAPER_TAB1_COLUMNS = ("lr", "test_acc", "prunability", "act_comp", "csi", "class_sep")
PAPER_TAB1: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {
    ("mnist_cifar", "fcn"): ((0.001, 0.01), (35.247, 35.369), (0.930, 0.940), (0.191, 0.215), (0.108, 0.136), (0.13, 0.143)),
    ("mnist_cifar", "cnn"): ((0.001, 0.2), (24.507, 41.717), (0.326, 0.902), (0.173, 0.513), (0.079, 0.225), (0.049, 0.149)),
    ("mnist_cifar", "resnet18"): ((0.001, 0.25), (26.233, 47.513), (0.311, 0.737), (0.294, 0.343), (0.225, 0.371), (0.115, 0.255)),
    ("mnist_cifar", "resnet50"): ((0.005, 0.1), (23.287, 34.358), (0.378, 0.515), (0.25, 0.34), (0.143, 0.25), (0.065, 0.143)),
    ("mnist_cifar", "wrn101_2"): ((0.005, 0.1), (24.855, 33.537), (0.418, 0.522), (0.252, 0.34), (0.166, 0.247), (0.082, 0.149)),
    ("celeba", "swin_t"): ((1e-07, 0.0001), (40.889, 48.21), (0.344, 0.609), (0.265, 0.584), (0.122, 0.305), (0.06, 0.164)),
    ("colored_mnist", "fcn"): ((0.001, 0.5), (72.727, 76.11), (0.935, 0.968), (0.285, 0.389), (0.243, 0.381), (0.291, 0.387)),
    ("colored_mnist", "cnn"): ((0.01, 0.35), (88.2, 91.48), (0.532, 0.931), (0.372, 0.643), (0.302, 0.576), (0.376, 0.692)),
    ("colored_mnist", "resnet18"): ((0.001, 0.25), (68.343, 91.543), (0.252, 0.771), (0.381, 0.527), (0.38, 0.63), (0.212, 0.635)),
    ("colored_mnist", "resnet50"): ((0.001, 0.1), (55.687, 86.38), (0.284, 0.489), (0.334, 0.524), (0.198, 0.458), (0.07, 0.509)),
    ("colored_mnist", "resnet50 (PSGD)"): ((1e-6, 0.01), (24.16, 93.09), (0.249, 0.959), (0.334, 1.0), (0.159, 0.888), (0.126, 0.712)),
    ("colored_mnist", "wrn101_2"): ((0.001, 0.25), (61.643, 85.25), (0.258, 0.559), (0.337, 0.787), (0.215, 0.473), (0.084, 0.569)),
    ("moon_star", "fcn"): ((0.01, 0.75), (74.315, 81.156), (0.954, 0.971), (0.375, 0.457), (0.257, 0.34), (0.2, 0.326)),
    ("corrupted_cifar10", "fcn"): ((0.0001, 0.005), (46.92, 51.93), (0.574, 0.847), (0.202, 0.252), (0.131, 0.183), (0.169, 0.182)),
    ("corrupted_cifar10", "cnn"): ((0.001, 0.1), (43.555, 48.503), (0.39, 0.861), (0.189, 0.341), (0.144, 0.387), (0.14, 0.329)),
    ("corrupted_cifar10", "resnet18"): ((0.001, 0.5), (35.153, 47.795), (0.267, 0.803), (0.382, 0.634), (0.266, 0.393), (0.115, 0.205)),
    ("corrupted_cifar10", "resnet50"): ((0.001, 0.1), (36.3, 45.52), (0.391, 0.556), (0.334, 0.475), (0.203, 0.304), (0.081, 0.134)),
    ("corrupted_cifar10", "wrn101_2"): ((0.001, 0.25), (37.827, 47.153), (0.399, 0.559), (0.339, 0.653), (0.215, 0.348), (0.09, 0.189)),
    ("double_mnist", "fcn"): ((0.001, 0.5), (69.287, 72.47), (0.986, 0.999), (0.236, 0.406), (0.22, 0.485), (0.428, 0.481)),
    ("double_mnist", "cnn"): ((0.005, 0.4), (83.987, 94.57), (0.383, 0.916), (0.235, 0.772), (0.187, 0.476), (0.204, 0.55)),
    ("double_mnist", "resnet18"): ((0.001, 0.1), (85.44, 95.577), (0.285, 0.706), (0.306, 0.365), (0.467, 0.602), (0.485, 0.776)),
    ("double_mnist", "resnet50"): ((0.001, 0.1), (42.045, 95.733), (0.228, 0.498), (0.16, 0.256), (0.152, 0.392), (0.172, 0.68)),
    ("double_mnist", "wrn101_2"): ((0.001, 0.1), (43.12, 96.08), (0.195, 0.508), (0.161, 0.298), (0.156, 0.416), (0.188, 0.703)),
    ("parity", "fcn"): ((0.01, 0.75), (55.31, 85.663), (0.56, 0.782), (0.333, 0.679), (0.032, 0.152), (0.008, 0.136)),
}


def ranges_table(results: dict[tuple[str, str], xr.Dataset],
                 metrics: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> pd.DataFrame:
    """Our min and max beside the paper's Tab. 1, one row per ``(dataset, model)`` of ``results``.

    Ours: the smallest and largest compared LR, and the min and max over compared LRs of each
    metric's seed mean (NaN where no LR is compared); test accuracy in % like the paper's.
    Columns: ``(variable, "ours" | "paper", "min" | "max")``; the paper's are NaN for a row
    it does not have.
    """
    nan = (float("nan"), float("nan"))
    rows = {}
    for key, ds in results.items():
        lrs = comparable_lrs(ds)
        paper = dict(zip(PAPER_TAB1_COLUMNS, PAPER_TAB1.get(key, (nan,) * len(PAPER_TAB1_COLUMNS))))
        ours = {"lr": (lrs[0], lrs[-1]) if lrs else nan}
        for var in metrics:
            mean = ds[var].mean("seed").sel(lr=lrs) * (100 if var == "test_acc" else 1)
            ours[var] = (float(mean.min()), float(mean.max())) if lrs else nan
        rows[key] = {(var, source, end): value for var in ("lr", *metrics)
                     for source, pair in (("ours", ours[var]), ("paper", paper[var]))
                     for end, value in zip(("min", "max"), pair)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["variable", "source", "end"])
    return table.rename_axis(["dataset", "model"])


def lr_effect(ds: xr.Dataset, metrics: dict[str, str] | None = None) -> dict[str, float]:
    """The LR effect of one sweep as named numbers, for glue: ``lo_lr``, ``hi_lr`` (the smallest
    and largest compared LR), then for each ``metrics`` entry ``short: variable`` the seed means
    ``lo_<short>``, ``hi_<short>`` at those LRs (test accuracy in %, as in the paper's tables)
    and ``<short>_rank``, the Spearman correlation with LR over compared LRs. All NaN where no
    LR is compared (the rank also where only one is)."""
    metrics = metrics or {"acc": "test_acc", "prune": "prunability", "comp": "act_comp"}
    lrs = comparable_lrs(ds)
    nan = float("nan")
    out = {"lo_lr": lrs[0] if lrs else nan, "hi_lr": lrs[-1] if lrs else nan}
    for short, var in metrics.items():
        scale = 100 if var == "test_acc" else 1
        _, lo, _, hi = endpoints(ds, var) if lrs else (nan,) * 4
        out[f"lo_{short}"], out[f"hi_{short}"] = scale * lo, scale * hi
        out[f"{short}_rank"] = rank_correlation(ds, var) if len(lrs) > 1 else nan
    return out


@dataclass(frozen=True)
class Trend:
    """How one variable moves with LR over a sweep's compared LRs, robust to one noisy LR.

    rank: Spearman correlation between LR and the seed mean, over the compared LRs.
    low / high: the mean over seeds and over the lower / upper half of the compared LRs (the
    middle one of an odd number goes to neither). effect: ``high - low``; spread: the standard
    deviation over seeds of each seed's own upper-minus-lower difference (NaN with one seed).
    The direction is clear when the effect exceeds its seed spread and the rank correlation
    has the effect's sign (with one seed, when the rank correlation is at least 0.5 in size).
    """

    variable: str
    n_lrs: int
    n_seeds: int
    rank: float
    low: float
    high: float
    effect: float
    spread: float

    @property
    def direction(self) -> int:
        """+1 rises with LR, -1 falls, 0 no clear direction (or fewer than two compared LRs)."""
        if self.n_lrs < 2 or not np.isfinite(self.effect) or not np.isfinite(self.rank) or self.effect == 0:
            return 0
        sign = int(np.sign(self.effect))
        if np.sign(self.rank) != sign:
            return 0
        clear = abs(self.effect) > self.spread if np.isfinite(self.spread) else abs(self.rank) >= 0.5
        return sign if clear else 0

    @property
    def words(self) -> str:
        return {1: "rises", -1: "falls", 0: "shows no clear direction"}[self.direction]

    def verdict(self, expected: int = 1) -> str:
        """``agrees`` / ``disagrees`` with a claim that the variable moves in ``expected``
        direction (+1 rises, -1 falls), or ``inconclusive``."""
        return {expected: "agrees", -expected: "disagrees", 0: "inconclusive"}[self.direction]


def trend(ds: xr.Dataset, var: str, scale: float = 1.0, axis: str = "lr") -> Trend:
    """:class:`Trend` of ``var`` (times ``scale``, e.g. 100 for accuracy in %) over the compared
    LRs of a sweep with dims ``(lr, seed)``, or over the compared values of another ``axis``."""
    lrs = comparable_lrs(ds, axis)
    nan = float("nan")
    if len(lrs) < 2:
        return Trend(var, len(lrs), ds.sizes["seed"], nan, nan, nan, nan, nan)
    values = ds[var].sel({axis: lrs}) * scale
    half = len(lrs) // 2
    lower, upper = values.isel({axis: slice(0, half)}), values.isel({axis: slice(len(lrs) - half, None)})
    per_seed = upper.mean(axis) - lower.mean(axis)
    n_seeds = int(per_seed.notnull().sum())
    return Trend(var, len(lrs), n_seeds, rank_correlation(ds, var, axis), float(lower.mean()), float(upper.mean()),
                 float(per_seed.mean()), float(per_seed.std(ddof=1)) if n_seeds > 1 else nan)


def trend_sentence(ds: xr.Dataset, var: str, expected: int = 1, scale: float = 1.0, unit: str = "") -> str:
    """One glue-ready clause on how ``var`` moves with LR (see :class:`Trend`) and whether that
    matches a claim that it moves in ``expected`` direction, e.g. ``"rises (effect +12.4 points,
    seed sd 3.3, rank correlation 1.00), as the paper claims"``."""
    t = trend(ds, var, scale)
    if t.n_lrs < 2:
        return "cannot be judged: fewer than two LRs are compared"
    spread = f", seed sd {t.spread:.3g}{unit}" if np.isfinite(t.spread) else ""
    judged = {"agrees": "as the paper claims", "disagrees": "against the paper's claim",
              "inconclusive": "so this run neither confirms nor contradicts the paper"}[t.verdict(expected)]
    return f"{t.words} (effect {t.effect:+.3g}{unit}{spread}, rank correlation {t.rank:.2f}), {judged}"


def trend_table(results: dict, variables: dict[str, str], expected: int = 1) -> pd.DataFrame:
    """One row per sweep of ``results`` (``{name: ds}``) and column group per ``variables``
    (``{short: variable}``): the rank correlation, the effect between the halves of the LR
    range, its seed spread, and the verdict on a claim that the variable moves in ``expected``
    direction with LR."""
    rows = {}
    for name, ds in results.items():
        row = {}
        for short, var in variables.items():
            t = trend(ds, var)
            row.update({(short, "rank"): t.rank, (short, "effect"): t.effect, (short, "seed sd"): t.spread,
                        (short, "verdict"): t.verdict(expected)})
        rows[name] = row
    return grouped_table(rows)


def grouped_table(rows: dict[str, dict[tuple[str, str], object]]) -> pd.DataFrame:
    """``{row name: {(group, column): value}}`` as a table with two-level columns."""
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def dataset_model(ds: xr.Dataset) -> tuple[str, str]:
    """``(dataset, model)`` registry names of a collected sweep, from its stored config."""
    cfg = json.loads(ds.attrs["config"])
    return cfg["dataset"], cfg["model"]


def sweep_settings(results: dict[tuple[str, str], xr.Dataset]) -> pd.DataFrame:
    """One row per ``(dataset, model)`` sweep: what it trained on and how, read from the config
    stored with its results. ``n_train`` is "all" where the full training split is used;
    ``rho`` and ``width`` fall back to the builder's default where the config leaves them out,
    and are empty for datasets without a planted spurious feature and models without a width."""
    rows = {}
    for key, ds in results.items():
        cfg = json.loads(ds.attrs["config"])
        defaults = {**datasets.params_of(key[0]), **models.params_of(key[1])}
        rows[key] = {
            "n_train": cfg["dataset_params"].get("n_train") or "all",
            "rho": cfg["dataset_params"].get("rho", defaults["rho"].default if "rho" in defaults else ""),
            "width": cfg["model_params"].get("width", defaults["width"].default if "width" in defaults else ""),
            "n_lrs": ds.sizes["lr"],
            "lr_min": float(ds.lr.min()),
            "lr_max": float(ds.lr.max()),
            "seeds": ds.sizes["seed"],
            "step_cap": cfg["train"]["max_steps"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["dataset", "model"])


def gain_table(ds: xr.Dataset, metrics: tuple[str, ...] = ("test_acc", "prunability")) -> pd.DataFrame:
    """Per data setting of a sweep with dims ``(*settings, lr, seed)``: each metric's seed mean
    at the smallest and largest LR, the gain between them and the seed standard deviation
    (the larger of the two LRs'), and whether every run of the setting converged.

    A gain smaller than the seed spread is not an effect two or three seeds can show.
    """
    lo, hi = ds.lr.values.min(), ds.lr.values.max()
    ends = ds.sel(lr=[lo, hi])
    columns = {}
    for var in metrics:
        mean, sd = ends[var].mean("seed"), ends[var].std("seed")
        columns[f"{var} @ lr {lo:g}"] = mean.sel(lr=lo)
        columns[f"{var} @ lr {hi:g}"] = mean.sel(lr=hi)
        columns[f"{var} gain"] = mean.sel(lr=hi) - mean.sel(lr=lo)
        columns[f"{var} seed sd"] = sd.max("lr")
    columns["all converged"] = ends.converged.all(["lr", "seed"])
    return xr.Dataset({k: v.drop_vars("lr", errors="ignore") for k, v in columns.items()}).to_dataframe()


def headline(results_dir) -> pd.DataFrame:
    """How unbiased accuracy and prunability move with LR in every sweep stored under
    ``results_dir``: one row per folder ``<results_dir>/<sweep>/results.nc`` whose metrics
    have dims ``(lr, seed)`` only (sweeps over data settings, with more dims, are left out),
    in folder-name order. A sweep that is missing or not collected yet is skipped.

    Columns: ``dataset``, ``model``, ``LRs`` (how many compared), ``LR low`` / ``LR high``
    (the smallest and largest compared LR), the seed mean of unbiased accuracy (%) and of
    prunability at those two LRs, and ``rank``: the Spearman correlation of the seed mean
    with LR over the compared LRs (see :func:`lr_effect`; NaN with fewer than two). Columns
    are ``(quantity, column)`` pairs, quantity one of ``""``, ``"accuracy (%)"``,
    ``"prunability"``.
    """
    from pathlib import Path

    from lrsc import store

    rows = {}
    for path in sorted(Path(results_dir).glob("*/results.nc")):
        ds = store.load(path)
        if set(ds["test_acc"].dims) != {"lr", "seed"} or "prunability" not in ds:
            continue
        dataset, model = dataset_model(ds)
        effect = lr_effect(ds, {"acc": "test_acc", "prune": "prunability"})
        rows[path.parent.name] = {
            ("", "dataset"): dataset, ("", "model"): model, ("", "LRs"): len(comparable_lrs(ds)),
            ("", "LR low"): effect["lo_lr"], ("", "LR high"): effect["hi_lr"],
            **{(quantity, column): effect[f"{end}_{short}"]
               for quantity, short in (("accuracy (%)", "acc"), ("prunability", "prune"))
               for column, end in (("low LR", "lo"), ("high LR", "hi"))},
            ("accuracy (%)", "rank"): effect["acc_rank"], ("prunability", "rank"): effect["prune_rank"],
        }
    columns = pd.MultiIndex.from_tuples(
        [("", "dataset"), ("", "model"), ("", "LRs"), ("", "LR low"), ("", "LR high"),
         ("accuracy (%)", "low LR"), ("accuracy (%)", "high LR"), ("accuracy (%)", "rank"),
         ("prunability", "low LR"), ("prunability", "high LR"), ("prunability", "rank")])
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.reindex(columns=columns).rename_axis("sweep")
