"""Large LR against other hyperparameters and regularisers (paper Fig. 6, Fig. 9, Tab. 2).

Each hyperparameter is swept over its range at one fixed small LR, beside the LR sweep
itself; :func:`sweep_each` runs those sweeps (the shared run store trains the runs they have in
common once), :func:`ranges_table` gives Tab. 2 (the min and max of each variable over a
hyperparameter's range, beside the paper's), and the claims of :mod:`lrsc.claims` judge with
:func:`lrsc.verdicts.trend` along each hyperparameter's own axis whether it raises robustness
and compressibility together. The direction in which a setting acts like a larger LR is
declared with the setting (``lrsc.settings``, ``like_lr``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import paper, report, settings
from lrsc.sweep import run_sweep
from lrsc.verdicts import compared

LR_PLUS_L2 = "lr+l2"  # results key of "high LR + L2": the L2 penalty swept at the large LR


def name(key: str) -> str:
    """How prose and tables name a swept setting."""
    return "high LR + L2" if key == LR_PLUS_L2 else settings.TRAIN[key].name


def axis(key: str) -> str:
    """The swept axis of a results key."""
    return "weight_decay" if key == LR_PLUS_L2 else key


def sweep_each(params: str | Path, lr: float, ranges: dict[str, list], out_dir: str | Path,
               overrides: dict | None = None, seeds: list[int] | None = None,
               progress: bool = False) -> dict[str, xr.Dataset]:
    """The LR sweep of ``params`` (its own grid) and, for each hyperparameter of ``ranges``
    (``{train key: values}``, e.g. ``{"momentum": [0, 0.5, 0.9]}``), the same sweep at the single
    ``lr`` with that key as an axis. Each is stored under ``out_dir/hp_<key>`` (the LR sweep
    under ``out_dir/<params stem>``, shared with any chapter that runs it).

    ``seeds``: the seeds of the hyperparameter sweeps (default: the LR sweep's).
    Returns ``{key: ds}`` with ``"lr"`` first; ``ds`` has dims ``(key, seed)`` (the LR sweep
    ``(lr, seed)``) and every stored variable.
    """
    params, out_dir = Path(params), Path(out_dir)
    overrides = dict(overrides or {})
    results = {"lr": run_sweep(params, out_dir / params.stem, overrides, progress=progress)}
    chosen = {"grid.seed": seeds} if seeds else {}
    for key, values in ranges.items():
        title = f"{report.title(results['lr'])}: {name(key)} at LR {lr:g}"
        ds = run_sweep(params, out_dir / f"hp_{key}", {**overrides, **chosen, "grid.lr": [lr], f"grid.{key}": values,
                                                        "title": title}, progress=progress)
        results[key] = ds.isel(lr=0)
    return results


def ranges_table(results: dict[str, xr.Dataset], dataset: str,
                 variables: tuple[str, ...] = ("test_acc", "prunability", "csi")) -> pd.DataFrame:
    """Tab. 2: per hyperparameter of ``results`` (``{key: ds}``, dims ``(key, seed)``), its swept
    range and the min and max of each variable's seed mean over the compared values (every seed
    converged), each independently, beside the paper's row for ``dataset`` where it has one (the
    paper prints the batch size as 1 / batch size); accuracies in %."""
    paper_rows = paper.tab2(dataset) or paper.tab2("colored_mnist")
    rows = {}
    for key, ds in results.items():
        values = compared(ds, axis(key))
        mean = ds[list(variables)].mean("seed").sel({axis(key): values})
        row = {("range", "ours"): f"{min(values):g} – {max(values):g}" if values else "none compared"}
        if key in paper_rows:
            row[("range", "paper")] = "{:g} – {:g}".format(*paper_rows[key]["range"])
        for var in variables:
            scale = float(ds[var].attrs.get("display_scale", 1.0))
            v = mean[var].values * scale
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
        frames.append(frame.rename(columns={axis(key): "value"}).assign(varied=name(key))
                      [["varied", "value", "seed", "converged", "diverged", *variables]])
    return pd.concat(frames, ignore_index=True)
