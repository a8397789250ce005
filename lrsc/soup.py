"""Model soups (Wortsman et al. 2022): the uniform weight average of models that share an
initialisation, evaluated with the usual variables (paper supplement, Fig. 30 right).

Runs of a sweep that differ only in their training settings (LR, momentum, ...) and share a
seed start from the same weights (``lrsc.runs.init_model`` draws them from the seed), so
they can be averaged. :func:`pair_soups` averages every pair of LRs of each seed. The paper
presents soups as a way to *disentangle* robustness from compressibility; :func:`judge`
tests that reading: a soup's accuracy and its prunability sit at different points between
those of its two members.
"""
from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from lrsc import sweepdir, verdicts
from lrsc.variables import Presentation
from lrsc.verdicts import Verdict


POSITION_SESOI = 0.1  # a tenth of the span between the two members: a smaller gap between positions is no separation


def average(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts of one architecture (floating-point entries; the
    others, such as BatchNorm's step counter, are taken from the first)."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if states[0][k].is_floating_point() else states[0][k]
            for k in states[0]}


def pair_soups(out_dir: str | Path, names: tuple[str, ...] = ("test_acc", "prunability", "act_comp", "csi"),
               device: str = "cpu") -> xr.Dataset:
    """Every two-model soup of the LR sweep in ``out_dir`` (dims ``lr`` and ``seed``): for each seed
    and each pair of LRs ``(lr_a, lr_b)``, the average of the two trained models, evaluated on the
    unbiased test set. Returns the variables ``names`` with dims ``(lr_a, lr_b, seed)``; the
    diagonal is each model alone. Raises ValueError when the sweep has an axis besides ``lr`` and
    ``seed`` (its runs would not share an initialisation)."""
    from lrsc.evaluation import evaluate
    from lrsc.runs import load_data, trained_model
    from lrsc.store import RunStore

    grid = sweepdir.read_grid(out_dir)
    dims = grid["dims"]
    if set(dims) != {"lr", "seed"}:
        raise ValueError(f"pair_soups needs a sweep over lr and seed only; {out_dir} sweeps {', '.join(dims)}")
    store = RunStore(grid["store"])
    runs = {(p["lr"], p["seed"]): store.state(h).record for p, h in zip(sweepdir.points(grid), grid["hashes"])}
    hashes = {(p["lr"], p["seed"]): h for p, h in zip(sweepdir.points(grid), grid["hashes"])}
    lrs, seeds = dims["lr"], dims["seed"]
    out = {name: np.full((len(lrs), len(lrs), len(seeds)), np.nan) for name in names}
    for k, seed in enumerate(seeds):
        run = runs[lrs[0], seed]["config"]
        train_set, test_set = load_data(run, device)
        # the weights' bytes are checked against the run's record before they are loaded
        states = [torch.load(io.BytesIO(store.read(hashes[lr, seed], "pt")), map_location=device, weights_only=True)
                  for lr in lrs]
        for i, j in itertools.combinations_with_replacement(range(len(lrs)), 2):
            model = trained_model(run, average([states[i], states[j]]), train_set)
            values = evaluate(run, model, test_set, None, names)
            for name in names:
                out[name][i, j, k] = out[name][j, i, k] = float(values[name])
    return xr.Dataset({name: (("lr_a", "lr_b", "seed"), v) for name, v in out.items()},
                      coords={"lr_a": lrs, "lr_b": lrs, "seed": seeds})


def judge(soups: xr.Dataset, lo: float, hi: float) -> list[tuple[str, Verdict]]:
    """Whether the soup of the LR ``lo`` and LR ``hi`` models separates robustness from
    compressibility: per seed, where the soup sits between its two members (0 at the ``lo``
    model, 1 at the ``hi`` one) in accuracy minus where it sits in prunability; the claim holds
    when that differs from zero. Untestable when the two members do not clearly differ in
    accuracy or in prunability (the soup then has no span to sit in)."""
    position = {}
    for var in ("test_acc", "prunability"):
        low, high = soups[var].sel(lr_a=lo, lr_b=lo), soups[var].sel(lr_a=hi, lr_b=hi)
        apart = verdicts.contrast(low, high, 0)
        if apart.side == 0:
            statement = f"The soup of the LR {lo:g} and LR {hi:g} models separates robustness from compressibility."
            return [(statement, Verdict("untestable", seeds=apart.seeds, points=2,
                                        reason=f"the two models do not clearly differ in {var} ({apart.text()})"))]
        position[var] = (soups[var].sel(lr_a=lo, lr_b=hi) - low) / (high - low)
    statement = (f"The soup of the LR {lo:g} and LR {hi:g} models separates robustness from compressibility: it sits "
                 f"at different points between its two members in accuracy and in prunability.")
    return [(statement, verdicts.contrast(position["prunability"], position["test_acc"], 0,
                                          look=Presentation(sesoi=POSITION_SESOI)))]
