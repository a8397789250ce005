"""Making stored runs trustworthy before a sweep reads them.

Before a sweep trains anything, :func:`heal` looks at each of its runs in the store:

- a run whose files do not match their checksums, or whose record cannot be read, is
  *damaged*: reported, moved aside (``<hash>.nc.corrupt``, ...) and trained again;
- a run stored before some registered variable existed is *stale*: the model variables it
  lacks are computed from its stored weights; if it lacks training variables, it is moved
  aside (``.stale``) and trained again. Nothing is mixed in as NaN;
- runs of an older lrsc, kept inside their sweep folder (``<out>/runs/``) or in a store
  folder without checksums, are *adopted*: each file is read, its config normalised and
  hashed anew, and it moves into the store with a record and checksums (or, unreadable, is
  moved aside and trained again).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
import xarray as xr

from lrsc import variables
from lrsc.collect import load
from lrsc.errors import ConfigError
from lrsc.evaluation import evaluate
from lrsc.runs import load_data, trained_model
from lrsc.store import FINISHED, MARK, RunStore, read_json
from lrsc.units import Run

log = logging.getLogger("lrsc")


def heal(store: RunStore, runs: list[Run], out: Path, device: str = "auto") -> None:
    """Adopt older runs, set damaged ones aside and complete stale ones, for the ``runs`` of a sweep
    whose folder is ``out`` (see the module docstring)."""
    by_hash = {run.hash: run for run in runs}
    for legacy in {out / "runs", store.root}:
        if legacy.is_dir() and not (legacy / MARK).exists() and any(legacy.glob("*.nc")):
            adopt(store, legacy)
    stale: dict[str, set[str]] = {}
    for h, run in by_hash.items():
        state = store.state(h)
        if state.status == "damaged":
            moved = store.set_aside(h, "corrupt")
            log.warning("run %s in %s: %s; moved aside (%s); training it again", h, store.root, state.problem,
                        ", ".join(p.name for p in moved))
        elif state.status in FINISHED:
            missing = [v for v in variables.declared() if v.name not in state.record.get("variables", [])]
            if missing:
                action = _complete(store, run, missing, device)
                stale.setdefault(action, set()).update(v.name for v in missing)
    for action, names in stale.items():
        log.warning("stored runs in %s lacked %s; %s", store.root, ", ".join(sorted(names)), action)


def _complete(store: RunStore, run: Run, missing: list[variables.Variable], device: str) -> str:
    """Add the ``missing`` model variables to a stored run from its weights, or set it aside to retrain."""
    if any(v.kind == "training" for v in missing):
        store.set_aside(run.hash, "stale")
        return "trained again"
    train_set, test_set = load_data(run.config, device if device != "auto" else "cpu")
    model = trained_model(run.config, store.path(run.hash, "pt"), train_set)
    ds = load(store.path(run.hash, "nc"))
    for name, value in evaluate(run.config, model, test_set, None, tuple(v.name for v in missing)).items():
        ds[name] = (variables.get(name).dims, value, variables.get(name).attrs())
    record = store.state(run.hash).record
    weights = store.path(run.hash, "pt")
    _recommit(store, run.hash, ds, weights, record)
    return "completed from their stored weights"


def _recommit(store: RunStore, run_hash: str, ds: xr.Dataset, weights: Path, record: dict) -> None:
    """Store ``ds`` and a copy of the weights file ``weights`` (which may be the run's own) as run
    ``run_hash`` with ``record`` and new checksums."""
    store.commit(run_hash, lambda p: ds.to_netcdf(p, engine="h5netcdf"), lambda p: shutil.copyfile(weights, p),
                 {**record, "variables": sorted(ds.data_vars)})


def adopt(store: RunStore, legacy: Path) -> None:
    """Move the runs an older lrsc stored in ``legacy`` (``<hash>.nc``, ``.pt``, ``.json``, no
    checksums) into ``store`` under their normalised hashes."""
    from lrsc.sweep import Planner

    planner, adopted, lost = Planner(), 0, []
    for nc in sorted(legacy.glob("*.nc")):
        pt = nc.with_suffix(".pt")
        try:
            ds = load(nc)
            config, h = planner.prepare(json.loads(ds.attrs["config"]))
            torch.load(pt, map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, ConfigError) as e:
            lost.append(f"{nc.name} ({type(e).__name__})")
            for path in (nc, pt):
                if path.exists():
                    path.replace(path.with_name(f"{path.name}.corrupt"))
            continue
        if not store.finished(h):
            _adopt_one(store, h, config, ds, pt, read_json(nc.with_suffix(".json")) or {})
        for path in (nc, pt, nc.with_suffix(".json")):
            if path.exists() and path.resolve() not in (store.path(h, k).resolve() for k in ("nc", "pt", "json")):
                path.unlink()
        adopted += 1
    store.mark()
    log.warning("moved %d runs stored by an older lrsc from %s into the run store %s%s", adopted, legacy, store.root,
                f"; could not read {', '.join(lost)} (set aside, trained again)" if lost else "")
    if legacy != store.root and not any(legacy.iterdir()):
        legacy.rmdir()


def _adopt_one(store: RunStore, run_hash: str, config: dict, ds: xr.Dataset, weights: Path, old: dict) -> None:
    ds.attrs.update(config=json.dumps(config, sort_keys=True), hash=run_hash)
    for name in ds.data_vars:
        if name in variables.REGISTRY:
            ds[name].attrs.update(variables.get(name).attrs())
    prov = {k: ds.attrs.get(k) for k in ("lrsc_version", "device", "threads", "training_path", "wall_time_s")}
    prov.update(host=old.get("host"), finished=old.get("finished"))
    record = {"status": "diverged" if bool(ds["diverged"]) else "done", "config": config,
              "provenance": {k: (v.item() if hasattr(v, "item") else v) for k, v in prov.items() if v is not None}}
    _recommit(store, run_hash, ds, weights, record)
