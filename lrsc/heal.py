"""Making stored runs trustworthy before a sweep reads them.

Before a sweep trains anything, :func:`heal` looks at each of its planned runs in the store
(:func:`check` says where each stands):

- a run whose files do not match their checksums or their name, or whose record cannot be
  read, is *damaged*: reported, moved aside (``<hash>.nc.corrupt``, ...) and trained again;
- a run stored under another resolved config or other dataset or model code than planned
  (see :mod:`lrsc.identity`) is *outdated*: reported with the reason, moved aside
  (``.outdated``) and trained again;
- a run that lacks a registered variable, or holds one under an older definition, has it
  recomputed from its stored weights when it is a model variable; a training variable cannot
  be recomputed, so the run is outdated and trained again. Nothing old is kept under a new
  definition, and nothing is mixed in as NaN.

Temporary files left by killed writers are removed first (:meth:`lrsc.store.RunStore.remove_leftovers`).
"""
from __future__ import annotations

import io
import logging

import torch

from lrsc import identity, netcdf, variables
from lrsc.evaluation import evaluate
from lrsc.runs import load_data, trained_model
from lrsc.store import FINISHED, RunStore, State
from lrsc.plan import Run
from lrsc.worker import fixed_threads

log = logging.getLogger("lrsc")


def check(store: RunStore, run: Run) -> tuple[State, list[str]]:
    """Where planned run ``run`` stands in ``store``, and the model variables to recompute from its
    stored weights when that is all it needs. The state is the store's, or ``outdated`` with the
    reason (see :mod:`lrsc.identity`) when a finished run is not the planned one or lacks a
    variable or holds an older definition of one."""
    state = store.state(run.hash)
    if state.status not in FINISHED:
        return state, []
    why = identity.why_outdated(state.record, run.config, run.code)
    if why:
        return State("outdated", state.record, why), []
    stale = identity.redefined(state.record, run.code["variables"])
    if not stale:
        return state, []
    lacked = [n for n in stale if n not in state.record.get("variables", [])]
    older = [n for n in stale if n not in lacked]
    what = " and ".join(([f"lacks {', '.join(lacked)}"] if lacked else []) +
                        ([f"holds an older definition of {', '.join(older)}"] if older else []))
    training = [n for n in stale if variables.get(n).kind == "training"]
    if training:
        return State("outdated", state.record, f"{what} ({', '.join(training)} from training: trained again)"), []
    return State("outdated", state.record, f"{what} (recomputed from its stored weights)"), stale


def heal(store: RunStore, runs: list[Run], device: str = "auto") -> None:
    """Set damaged and outdated runs aside and recompute redefined variables, for the planned
    ``runs`` of a sweep (see the module docstring)."""
    store.remove_leftovers()
    retrained: dict[str, list[str]] = {}
    completed: dict[str, list[str]] = {}
    for run in runs:
        state, recompute = check(store, run)
        if state.status == "damaged":
            moved = store.set_aside(run.hash, "corrupt")
            log.warning("run %s in %s: %s; moved aside (%s); training it again", run.hash, store.root, state.problem,
                        ", ".join(p.name for p in moved))
        elif state.status == "outdated" and recompute:
            _complete(store, run, state.record, recompute, device)
            completed.setdefault(state.problem, []).append(run.hash)
        elif state.status == "outdated":
            store.set_aside(run.hash, "outdated")
            retrained.setdefault(state.problem, []).append(run.hash)
    for why, hashes in retrained.items():
        log.warning("%d stored run(s) in %s outdated (%s): %s; moved aside (.outdated), training again", len(hashes),
                    store.root, _some(hashes), why)
    for why, hashes in completed.items():
        log.warning("%d stored run(s) in %s (%s) %s", len(hashes), store.root, _some(hashes), why)


def _some(hashes: list[str]) -> str:
    return ", ".join(hashes[:3]) + (", ..." if len(hashes) > 3 else "")


def _complete(store: RunStore, run: Run, stored: dict, names: list[str], device: str) -> None:
    """Compute the model variables ``names`` of a stored run from its weights and store them with
    their current fingerprints (``stored`` is its record)."""
    weights = store.read(run.hash, "pt", stored)
    ds = netcdf.loads(store.read(run.hash, "nc", stored))
    with fixed_threads():
        train_set, test_set = load_data(run.config, device if device != "auto" else "cpu")
        state = torch.load(io.BytesIO(weights), map_location=train_set.x.device, weights_only=True)
        model = trained_model(run.config, state, train_set)
        values = evaluate(run.config, model, test_set, None, tuple(names))
    for name, value in values.items():
        ds[name] = (variables.get(name).dims, value, variables.get(name).attrs())
    code = {**stored.get("code", {}), "variables": {**stored["code"].get("variables", {}),
                                                   **{n: run.code["variables"][n] for n in names}}}
    fields = {k: v for k, v in stored.items() if k not in ("files", "hash")}
    store.commit(run.hash, netcdf.dumps(ds), weights, {**fields, "code": code, "variables": sorted(ds.data_vars)})
