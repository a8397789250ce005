"""A large LR against robust-training methods: how each method's LR is selected, and what is compared.

Each method (``train.method``) is swept over LR like any setting, one sweep per method. Model
selection never looks at the test set: the sweeps hold a validation split out of the unbiased
test set (``metrics.val_frac``) and every test variable is computed on the rest. A method's
*selected* LR is the compared LR (every seed fit its training set, none diverged) with the
highest seed-mean validation score, :func:`selection_variable`: unbiased validation accuracy
for the methods that see no group labels (ERM, JTT, LfF), worst-group validation accuracy for
GroupDRO, which trains on them (the selection Sagawa et al. use). A method's *default* LR is the
smallest LR of its sweep: the sweep files start each ladder at the LR such methods are usually
trained at, and the page names it. This module imports no torch.
"""
from __future__ import annotations

import pandas as pd
import xarray as xr

from lrsc.results import config, look
from lrsc.verdicts import compared

NAMES = {"erm": "ERM", "jtt": "JTT", "lff": "LfF", "group_dro": "GroupDRO"}
GROUP_LABELS = ("group_dro",)  # the methods that train on the bias labels, and so may select on them too


def method(ds: xr.Dataset) -> str:
    """The ``train.method`` of a collected sweep."""
    return config(ds)["train"]["method"]


def name(ds: xr.Dataset) -> str:
    """How readers name the method of a collected sweep."""
    return NAMES[method(ds)]


def selection_variable(method_: str) -> str:
    """The validation variable that selects ``method_``'s LR: worst-group validation accuracy for a
    method that uses group labels, unbiased validation accuracy for the others."""
    return "val_worst_group_acc" if method_ in GROUP_LABELS else "val_acc"


def selected_lr(ds: xr.Dataset) -> float | None:
    """The compared LR of ``ds`` with the highest seed-mean selection score (None when no LR is
    compared, or the sweep holds no validation split)."""
    lrs = compared(ds)
    score = ds[selection_variable(method(ds))].mean("seed")
    if not lrs or not score.sel(lr=lrs).notnull().any():
        return None
    return float(score.sel(lr=lrs).idxmax("lr"))


def default_lr(ds: xr.Dataset) -> float:
    """A method's default LR: the smallest LR of its sweep."""
    return float(ds.lr.min())


def selection_table(results: list[xr.Dataset], variables: tuple[str, ...] = ("test_acc", "worst_group_acc",
                                                                               "prunability")) -> pd.DataFrame:
    """Per method: what selects its LR, its default and selected LRs, and the seed means of
    ``variables`` (display units) at each of the two."""
    rows = {}
    for ds in results:
        chosen, default = selected_lr(ds), default_lr(ds)
        row = {("LR", "default"): f"{default:g}", ("LR", "selected"): "none compared" if chosen is None
               else f"{chosen:g}", ("LR", "selected on"): ds[selection_variable(method(ds))].attrs["long_name"]}
        for var in variables:
            shown = look(ds, var)
            mean = ds[var].mean("seed") * shown.scale
            header = shown.header or var
            row[(header, "default LR")] = float(mean.sel(lr=default))
            row[(header, "selected LR")] = float(mean.sel(lr=chosen)) if chosen is not None else float("nan")
        rows[name(ds)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table
