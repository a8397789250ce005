"""Model soups (Wortsman et al. 2022): the uniform weight average of models that share an
initialisation, evaluated with the usual variables (paper supplement, Fig. 30 right).

Runs of a sweep that differ only in their training settings (LR, momentum, ...) and share a
seed start from the same weights (``lrsc.sweep.init_model`` draws them from the seed), so
they can be averaged. :func:`pair_soups` averages every pair of LRs of each seed.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from lrsc import store, variables
from lrsc.config import axes, expand, run_hash


def average(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts of one architecture (floating-point entries; the
    others, such as BatchNorm's step counter, are taken from the first)."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if states[0][k].is_floating_point() else states[0][k]
            for k in states[0]}


def pair_soups(out_dir: str | Path, names: tuple[str, ...] = ("test_acc", "prunability", "act_comp", "csi"),
               device: str = "cpu") -> xr.Dataset:
    """Every two-model soup of the LR sweep stored in ``out_dir`` (dims ``lr`` and ``seed``):
    for each seed and each pair of LRs ``(lr_a, lr_b)``, the average of the two trained models,
    evaluated on the unbiased test set. Returns the variables ``names`` with dims
    ``(lr_a, lr_b, seed)``; the diagonal is each model alone. Raises ValueError when the sweep
    has an axis besides ``lr`` and ``seed`` (its runs would not share an initialisation).
    """
    from lrsc.sweep import init_model, load_data, read_config

    out_dir = Path(out_dir)
    cfg = read_config(out_dir)
    dims = axes(cfg)
    if set(dims) != {"lr", "seed"}:
        raise ValueError(f"pair_soups needs a sweep over lr and seed only; {out_dir} sweeps {', '.join(dims)}")
    runs = {(run["train"]["lr"], run["seed"]): run for run in expand(cfg)}
    lrs, seeds = dims["lr"], dims["seed"]
    out = {name: np.full((len(lrs), len(lrs), len(seeds)), np.nan) for name in names}
    for k, seed in enumerate(seeds):
        train_set, test_set = load_data(runs[lrs[0], seed], torch.device(device))
        states = [torch.load(store.weights_path(out_dir, run_hash(runs[lr, seed])), map_location=device) for lr in lrs]
        for i, j in itertools.combinations_with_replacement(range(len(lrs)), 2):
            model = init_model(runs[lrs[i], seed], train_set)
            model.load_state_dict(average([states[i], states[j]]))
            values = variables.evaluate(runs[lrs[i], seed], model.eval(), test_set, None, names)
            for name in names:
                out[name][i, j, k] = out[name][j, i, k] = float(values[name])
    return xr.Dataset({name: (("lr_a", "lr_b", "seed"), v) for name, v in out.items()},
                      coords={"lr_a": lrs, "lr_b": lrs, "seed": seeds},
                      attrs={"config": json.dumps(cfg, sort_keys=True)})
