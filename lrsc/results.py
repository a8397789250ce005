"""Reading a collected sweep: its stored config, its name for readers, and its values in display units.

A collected sweep (``results.nc``, see :mod:`lrsc.collect`) carries its complete config and
each variable's presentation in its attributes, so everything here works from the file alone,
without the code or the registry entries that made it. This module imports no torch.
"""
from __future__ import annotations

import json

import xarray as xr

from lrsc.variables import Presentation


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
    """``var`` in its display units (accuracies in %)."""
    return ds[var] * look(ds, var).scale
