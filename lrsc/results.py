"""Reading a collected sweep: its stored config, its name for readers, its values in display units,
and its runs as a table (:func:`table`, one row per run).

A collected sweep (``results.nc``, see :mod:`lrsc.collect`) carries its complete config and
each variable's presentation in its attributes, so everything here works from the file alone,
without the code or the registry entries that made it. This module imports no torch.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import xarray as xr

from lrsc.variables import Presentation

if TYPE_CHECKING:
    import pandas as pd


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


def look(ds: xr.Dataset, var: str) -> Presentation:
    """How variable ``var`` of ``ds`` is shown and judged (its stored presentation)."""
    return Presentation.of(ds[var].attrs, var)


def scaled(ds: xr.Dataset, var: str) -> xr.DataArray:
    """``var`` in its display units (accuracies in %), with its ``long_name`` and, where it has
    display units, those as its ``units`` (so ``scaled(ds, "test_acc").plot()`` labels its axis
    ``unbiased test accuracy [%]``)."""
    shown = look(ds, var)
    out = ds[var] * shown.scale
    kept = {k: ds[var].attrs[k] for k in ("long_name", "units") if k in ds[var].attrs}
    out.attrs = {**kept, **({"units": shown.units} if shown.units else {})}
    return out


def table(ds: xr.Dataset, dims: tuple[str, ...] | None = None) -> "pd.DataFrame":
    """One row per run of a collected sweep: a pandas DataFrame indexed by the grid's ``dims``
    (default: those of its ``status`` variable, else every dim of ``ds``), with a column for each
    variable that has one value per run (its ``run`` hash, ``status`` and every scalar result),
    in stored units (``ds[name].attrs["units"]``: accuracies as fractions).

    ``ds.to_dataframe()`` crosses every dim of the dataset instead (``step``, ``neuron``, ...), so
    it repeats each run's scalars over its traces, and is empty where one dim has length zero
    (``snapshot`` when ``metrics.snapshot_steps`` is empty). Traces and per-neuron values are left
    out here: take them from ``ds`` (``ds.loss.to_dataframe()``)."""
    grid = tuple(dims or (ds["status"].dims if "status" in ds else ds.dims))
    missing = [d for d in grid if d not in ds.dims]
    if missing:
        raise ValueError(f"table: the dataset has no dim {missing[0]!r}; its dims are {', '.join(map(str, ds.dims))}")
    per_run = [name for name, var in ds.data_vars.items() if set(var.dims) <= set(grid)]
    chosen = ds[per_run].drop_dims([d for d in ds[per_run].dims if d not in grid])
    return chosen.to_dataframe(dim_order=list(grid))[per_run]
