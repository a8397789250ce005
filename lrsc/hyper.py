"""Large LR against other hyperparameters and regularisers (paper Fig. 6, Fig. 9, Tab. 2).

Each hyperparameter is swept over its range at one fixed small LR, beside the LR sweep
itself (:func:`changes` makes the LR sweep such a sweep; the shared run store trains the runs
they have in common once), :func:`ranges_table` gives Tab. 2 (the min and max of each variable over a
hyperparameter's range, beside the paper's), and the claims of :mod:`lrsc.claims` judge with
:func:`lrsc.verdicts.trend` along each hyperparameter's own axis whether it raises robustness
and compressibility together. The direction in which a setting acts like a larger LR is
declared with the setting (``lrsc.settings``, ``like_lr``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import paper, settings
from lrsc.results import look
from lrsc.verdicts import compared

LR_PLUS_L2 = "lr+l2"  # results key of "high LR + L2": the L2 penalty swept at the large LR


def name(key: str) -> str:
    """How prose and tables name a swept setting."""
    return "high LR + L2" if key == LR_PLUS_L2 else settings.TRAIN[key].name


def dim_of(key: str) -> str:
    """The dim a results key sweeps."""
    return "weight_decay" if key == LR_PLUS_L2 else key


def changes(key: str, values: list, lr: float, seeds: list[int] | None = None) -> dict:
    """The changes that make an LR sweep a sweep of ``key`` over ``values`` at the single ``lr``
    (and ``seeds``, where given): ``{dotted key: value}`` for :meth:`lrsc.chapter.Chapter.sweep`."""
    return {"grid.lr": [lr], f"grid.{key}": values, **({"grid.seed": seeds} if seeds else {})}


PAPER_ROWS = {"colored_mnist": "Colored MNIST", "mnist_cifar": "MNIST-CIFAR", "double_mnist": "Double MNIST"}


STAND_IN = "colored_mnist"  # whose Tab. 2 rows stand beside a dataset the paper's Tab. 2 lacks


def paper_tab2(dataset: str) -> dict[str, dict[str, tuple[float, float]]]:
    """The paper's Tab. 2 rows set beside a sweep of ``dataset``: its own, or :data:`STAND_IN`'s
    for a dataset the table lacks (:func:`paper_rows` says which in words)."""
    return paper.tab2(dataset) or paper.tab2(STAND_IN)


def paper_rows(dataset: str) -> str:
    """Which of the paper's Tab. 2 rows :func:`paper_tab2` gives for ``dataset``, in words: the
    dataset's own, or, for a dataset the paper's Tab. 2 lacks, Colored MNIST's, said as such."""
    if dataset in PAPER_ROWS:
        return PAPER_ROWS[dataset]
    return f"Colored MNIST (the paper's Tab. 2 has no {dataset} rows; Colored MNIST's stand in, a different task)"


def ranges_table(results: dict[str, xr.Dataset], dataset: str,
                 variables: tuple[str, ...] = ("test_acc", "prunability", "csi")) -> pd.DataFrame:
    """Tab. 2: per hyperparameter of ``results`` (``{key: ds}``, dims ``(key, seed)``), its swept
    range and the min and max of each variable's seed mean over the compared values (every seed
    converged), each independently, beside the paper's rows (:func:`paper_tab2`; the
    paper prints the batch size as 1 / batch size); accuracies in %."""
    paper_rows = paper_tab2(dataset)
    rows = {}
    for key, ds in results.items():
        values = compared(ds, dim_of(key))
        mean = ds[list(variables)].mean("seed").sel({dim_of(key): values})
        row = {("range", "ours"): f"{min(values):g} – {max(values):g}" if values else "none compared"}
        if key in paper_rows:
            row[("range", "paper")] = "{:g} – {:g}".format(*paper_rows[key]["range"])
        for var in variables:
            v = mean[var].values * look(ds, var).scale
            row[(var, "min")], row[(var, "max")] = (np.nanmin(v), np.nanmax(v)) if len(v) else (np.nan, np.nan)
            if key in paper_rows and var in paper_rows[key]:
                row[(var, "paper min")], row[(var, "paper max")] = paper_rows[key][var]
        rows[name(key)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def runs_frame(results: dict[str, xr.Dataset],
               variables: tuple[str, ...] = ("test_acc", "prunability", "max_bc_loss_ratio")) -> pd.DataFrame:
    """Every run of ``results`` as a row: ``varied`` (the hyperparameter's name), ``value``,
    ``seed``, ``converged``, ``diverged`` and ``variables``."""
    frames = []
    for key, ds in results.items():
        frame = ds[[*variables, "converged", "diverged"]].to_dataframe().reset_index()
        frames.append(frame.rename(columns={dim_of(key): "value"}).assign(varied=name(key))
                      [["varied", "value", "seed", "converged", "diverged", *variables]])
    return pd.concat(frames, ignore_index=True)
