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

import json

import pandas as pd
import xarray as xr
import yaml

from lrsc.config import read
from lrsc.paths import project_root, resolve
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


def task(ds: xr.Dataset) -> tuple:
    """What a method sweep shares with the ERM sweep it is compared with: the dataset, the model
    and their parameters."""
    cfg = config(ds)
    return tuple(json.dumps(cfg[k], sort_keys=True) for k in ("dataset", "dataset_params", "model", "model_params"))


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
    ``variables`` (display units, to each variable's digits) at each of the two."""
    rows = {}
    for ds in results:
        chosen, default = selected_lr(ds), default_lr(ds)
        row = {("LR", "default"): f"{default:g}", ("LR", "selected"): "none compared" if chosen is None
               else f"{chosen:g}", ("LR", "selected on"): ds[selection_variable(method(ds))].attrs["long_name"]}
        for var in variables:
            shown = look(ds, var)
            mean = ds[var].mean("seed") * shown.scale
            header = shown.header or var
            row[(header, "default LR")] = round(float(mean.sel(lr=default)), shown.digits)
            row[(header, "selected LR")] = round(float(mean.sel(lr=chosen)), shown.digits) if chosen is not None \
                else float("nan")
        rows[name(ds)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def profile_tasks(profile: str) -> list[str] | None:
    """The tasks the chapter's ``params/<profile>/baselines.yaml`` sweeps, each as its title with its
    LRs and seeds, read from the files; None where the profile has no such file."""
    path = project_root() / "params" / profile / "baselines.yaml"
    if not path.is_file():
        return None
    out = []
    for task in yaml.safe_load(path.read_text())["tasks"]:
        cfg = read(resolve(task))
        lr, seeds = cfg["grid"].get("lr", []), len(cfg["grid"].get("seed", [0]))
        lrs = f"LRs {', '.join(f'{v:g}' for v in lr)}" if isinstance(lr, list) else "LRs up to the edge of stability"
        out.append(f"{cfg['title']} ({lrs}; {seeds} seeds)")
    return out


def profiles_sentence(profiles: list[str]) -> str:
    """One sentence naming what each of ``profiles`` runs in this chapter (from their parameter files)."""
    parts = [f"the {p} profile runs {'; '.join(tasks)}" for p in profiles if (tasks := profile_tasks(p))]
    return ("In this chapter " + ", and ".join(parts) + ".") if parts else "No profile's parameter files are at hand."
