"""Tables of collected sweeps for the book: what ran, the values over seeds, ours beside the paper's.

Everything here reads a sweep's stored results and their attributes (each variable's display
scale and header, the sweep's complete config), so a table needs neither the code nor the
registry entries that made the sweep. Verdicts come from :mod:`lrsc.verdicts` only.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import paper, settings, verdicts
from lrsc.verdicts import compared

SUMMARY = ("test_acc", "worst_group_acc", "prunability", "act_comp", "act_sparsity", "max_bc_loss_ratio")


def config(ds: xr.Dataset) -> dict:
    """The complete config a collected sweep stored (its runs' settings, grid and title)."""
    return json.loads(ds.attrs["config"])


def title(ds: xr.Dataset) -> str:
    """How a sweep is named for readers: its ``title``, else its dataset and model."""
    if ds.attrs.get("title"):
        return ds.attrs["title"]
    cfg = config(ds)
    return f"{cfg['dataset']}, {cfg['model']}"


def dataset_model(ds: xr.Dataset) -> tuple[str, str]:
    """``(dataset, model)`` registry names of a collected sweep."""
    cfg = config(ds)
    return cfg["dataset"], cfg["model"]


def config_values(ds: xr.Dataset) -> dict:
    """The scalar settings of a collected sweep (dataset, model, training and metric parameters,
    by their last name), for quoting in prose; read from its stored config alone."""
    cfg = config(ds)
    given = {k: v for section in ("dataset_params", "model_params", "train", "metrics") for k, v in cfg[section].items()}
    return {k: v for k, v in given.items() if isinstance(v, (bool, int, float, str))}


def header(ds: xr.Dataset, var: str) -> str:
    return ds[var].attrs.get("header") or var


def with_headers(table: pd.DataFrame, ds: xr.Dataset) -> pd.DataFrame:
    """``table`` with its top column level's variable names shown as their table headers
    (``test_acc`` -> ``acc. (%)``, ``lr`` -> ``LR``), read from ``ds``'s variable attributes."""
    names = {var: header(ds, var) for var in ds.data_vars}
    names["lr"] = "LR"
    return table.rename(columns=names, level=0 if table.columns.nlevels > 1 else None)


def scaled(ds: xr.Dataset, var: str) -> xr.DataArray:
    """``var`` in its display units (accuracies in %)."""
    return ds[var] * float(ds[var].attrs.get("display_scale", 1.0))


def summary_table(ds: xr.Dataset, variables: tuple[str, ...] = SUMMARY, axis: str = "lr") -> pd.DataFrame:
    """One row per value of ``axis``: the seed mean of each variable in its display units (the
    first with its seed standard deviation, ``± sd``), the mean steps, how many seeds met the
    stopping criterion (``conv.``) and diverged (``div.``), and whether the value is compared
    (every seed converged, none diverged). Works on any dataset with an ``axis`` dim; ``seed``,
    ``steps``, ``converged`` and ``diverged`` are optional."""
    if "seed" not in ds.dims:
        ds = ds.expand_dims(seed=[0])
    chosen, rows = set(compared(ds, axis)), {}
    for value in ds[axis].values:
        sel, row = ds.sel({axis: value}), {}
        for k, var in enumerate(v for v in variables if v in ds):
            digits = int(ds[var].attrs.get("digits", 3)) if "digits" in ds[var].attrs else 3
            values = scaled(sel, var)
            row[header(ds, var)] = round(float(values.mean()), digits)
            if k == 0 and sel.sizes["seed"] > 1:
                row["± sd"] = round(float(values.std(ddof=1)), digits)
        if "steps" in ds:
            row["steps"] = int(sel.steps.mean())
        if "converged" in ds:
            row["conv."] = f"{int(sel.converged.sum())}/{sel.sizes['seed']}"
            row["div."] = int(sel.diverged.sum())
        row["compared"] = "yes" if value in chosen else "no"
        rows[value.item() if hasattr(value, "item") else value] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(settings.label(axis))


def _shortest(value: object) -> object:
    # a column mixing 128 and 0.125 would otherwise print both with three decimals
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def settings_table(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per sweep (``{name: ds}``): the data, model, training-set size, rho, width, LRs,
    seeds and step cap it ran with, read from its stored config."""
    rows = {}
    for name, ds in results.items():
        cfg = config(ds)
        rows[name] = {"dataset": cfg["dataset"], "model": cfg["model"],
                      "n_train": cfg["dataset_params"].get("n_train") or "all",
                      "rho": _shortest(cfg["dataset_params"].get("rho", "")),
                      "width": _shortest(cfg["model_params"].get("width", "")),
                      "optimizer": cfg["train"]["optimizer"], "batch": cfg["train"]["batch_size"],
                      "LRs": ", ".join(f"{v:g}" for v in ds.lr.values) if "lr" in ds.dims else "",
                      "seeds": ds.sizes.get("seed", 1), "step cap": cfg["train"]["max_steps"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sweep")


def ranges_table(results: dict[str, xr.Dataset],
                 variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> pd.DataFrame:
    """Our min and max beside the paper's Tab. 1, one row per sweep (``{name: ds}``).

    Ours: the smallest and largest compared LR, and the min and max over the compared LRs of
    each variable's seed mean, each independently as in the paper; the paper's from
    :data:`lrsc.paper.TAB1` for the sweep's dataset and model (NaN where the paper has no
    such row). Accuracies in %. Columns ``(variable, "ours" | "paper", "min" | "max")``.
    """
    nan = (np.nan, np.nan)
    rows = {}
    for name, ds in results.items():
        lrs = compared(ds)
        theirs = paper.tab1(*dataset_model(ds)) or {}
        ours = {"lr": (lrs[0], lrs[-1]) if lrs else nan}
        for var in variables:
            mean = scaled(ds, var).mean("seed").sel(lr=lrs)
            ours[var] = (float(mean.min()), float(mean.max())) if lrs else nan
        rows[name] = {(var, source, end): value for var in ("lr", *variables)
                      for source, pair in (("ours", ours[var]), ("paper", theirs.get(var, nan)))
                      for end, value in zip(("min", "max"), pair)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["variable", "source", "end"])
    return table.rename_axis("sweep")


def trend_table(results: dict[str, xr.Dataset], checks: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """One row per sweep (``{name: ds}``) and one column per ``{label: (variable, expected)}``: the
    verdict of :func:`lrsc.verdicts.trend` with its numbers, e.g. ``rises: +3.1 points (90% CI
    ...)``; for variables a chapter shows beside its claims (controls the paper does not claim)."""
    rows = {}
    for name, ds in results.items():
        rows[name] = {}
        for label, (var, expected) in checks.items():
            v = verdicts.trend(ds, var, expected)
            rows[name][label] = f"{v.direction}: {v.text()}" if v.verdict != "untestable" else f"untestable: {v.text()}"
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sweep")


def above_one(ds: xr.Dataset) -> tuple[int, int]:
    """How many runs have a pruned model more accurate than the unpruned one at some pruning
    fraction (``P_q > 1``), out of the runs with a pruning curve."""
    curve = ds.prune_curve
    has = curve.notnull().any("prune_fraction")
    return int(((curve > 1).any("prune_fraction") & has).sum()), int(has.sum())


def _cells(ds: xr.Dataset, dims: list[str]) -> xr.Dataset:
    """``ds`` with its setting ``dims`` stacked into one ``cell`` dim (a single cell without any)."""
    return ds.stack(cell=dims) if dims else ds.expand_dims(cell=[0])


def settings_verdicts(ds: xr.Dataset, var: str = "test_acc") -> list[tuple[str, verdicts.Verdict]]:
    """Per data setting of a settings sweep (dims ``(*settings, lr, seed)``): the paired verdict
    that ``var`` is higher at the largest LR than at the smallest, labelled by its setting
    (``"rho 0.02, n_core 5"``), in grid order."""
    dims = [d for d in ds[var].dims if d not in ("lr", "seed")]
    stacked = _cells(ds[[var]], dims)
    scale, units, bounds = verdicts.presentation(ds[var])
    out = []
    for i in range(stacked.sizes["cell"]):
        cell = stacked.isel(cell=i)
        low, high = cell[var].sel(lr=cell.lr.min()), cell[var].sel(lr=cell.lr.max())
        label = ", ".join(f"{d} {cell[d].item():g}" for d in dims)
        out.append((label, verdicts.contrast(low.values, high.values, 1, units=units, scale=scale, bounds=bounds)))
    return out


def settings_frame(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability")) -> pd.DataFrame:
    """:func:`settings_verdicts` of each of ``variables`` as a table: one row per setting (indexed by
    the settings' values), columns ``(variable, "effect" | "verdict")`` and ``converged`` (every
    run of the setting converged)."""
    dims = [d for d in ds["test_acc"].dims if d not in ("lr", "seed")]
    stacked = _cells(ds[["converged"]], dims)
    cells = [stacked.isel(cell=i) for i in range(stacked.sizes["cell"])]
    keys = [tuple(c[d].item() for d in dims) for c in cells]
    index = pd.MultiIndex.from_tuples(keys, names=dims) if len(dims) > 1 else \
        pd.Index([k[0] if k else 0 for k in keys], name=dims[0] if dims else " ")
    columns = {}
    for var in variables:
        judged = [v for _, v in settings_verdicts(ds, var)]
        columns[(var, "effect")] = [v.effect for v in judged]
        columns[(var, "verdict")] = [v.verdict for v in judged]
    columns[("converged", "")] = [bool(c.converged.all()) for c in cells]
    table = pd.DataFrame(columns, index=index)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table
