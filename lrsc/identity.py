"""Whether a stored run is the run a sweep plans now: same resolved config, same code, same definitions.

A run is made by its fully resolved config (every setting with the defaults filled in, and the
dataset's and model's parameters with theirs) and by code: its dataset's builder, its model's
builder and the classes that builder puts in the model, and the definition of each variable it
stores. A run's record keeps the config and the fingerprints of that code
(:func:`lrsc.registry.fingerprint`, under ``code``). When a sweep plans a run whose hash the
store holds, the stored run is reused only if its record holds the planned config and the same
dataset and model code; otherwise it is *outdated* (:func:`why_outdated` says why) and trained
again. A variable whose definition changed (a metric registered anew with ``replace=True``) or
that the run lacks is :func:`redefined`: a model variable is recomputed from the stored weights,
a training variable makes the run outdated. Nothing old is shown under a new definition.

A key the planned config has and a stored record lacks (a setting or builder parameter added
since) is never presumed to have been at its current default: nothing stored proves that the
code which trained the run behaved as the new default does, so the run is outdated. For the
same reason, a record written before lrsc recorded code fingerprints is outdated.

This module imports no torch.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from lrsc import variables
from lrsc.registry import fingerprint

SHOWN = 3  # differences named in a reason, at most


@lru_cache(maxsize=1024)
def _variable(var: variables.Variable) -> str:
    return fingerprint(var.compute, var.name, var.definition, var.on, var.kind, var.dims, var.dtype, var.units)


def variable_fingerprints() -> dict[str, str]:
    """``{name: fingerprint}`` of every registered variable: its compute function's source and
    what it is declared to be (definition, kind, dims, dtype, units), not how it is shown."""
    return {v.name: _variable(v) for v in variables.declared()}


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists): how a record holds it."""
    return json.loads(json.dumps(value, sort_keys=True))


def differences(stored: Any, planned: Any, path: str = "") -> list[str]:
    """The dotted keys at which the mapping ``stored`` differs from ``planned``, each as
    ``"key: stored X, planned Y"`` (``"key: not recorded, planned Y"`` for a key ``stored`` lacks)."""
    stored, planned = _plain(stored), _plain(planned)
    if isinstance(stored, dict) and isinstance(planned, dict):
        out = []
        for key in sorted(set(stored) | set(planned)):
            where = f"{path}.{key}" if path else key
            if key not in stored:
                out.append(f"{where}: not recorded, planned {planned[key]!r}")
            elif key not in planned:
                out.append(f"{where}: stored {stored[key]!r}, not planned")
            else:
                out += differences(stored[key], planned[key], where)
        return out
    return [] if stored == planned else [f"{path}: stored {stored!r}, planned {planned!r}"]


def why_outdated(record: dict, config: dict, code: dict) -> str:
    """Why the stored run of ``record`` is not the planned run with resolved ``config`` and code
    fingerprints ``code`` (``{"dataset": ..., "model": ...}``); ``""`` when it is."""
    stored_code = record.get("code")
    if not isinstance(stored_code, dict) or "hashed" not in record:
        return "stored without the fingerprints of the code that made it (its record lacks them)"
    diffs = differences(record.get("config", {}), config)
    if diffs:
        more = f" and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
        return f"its config differs from the planned one: {'; '.join(diffs[:SHOWN])}{more}"
    for kind in ("dataset", "model"):
        if stored_code.get(kind) != code.get(kind):
            return f"the code of its {kind} {config[kind]!r} has changed since it was stored"
    return ""


def redefined(record: dict, fingerprints: dict[str, str], known_only: bool = False) -> list[str]:
    """The variables of ``fingerprints`` (``{name: fingerprint}``) the stored run of ``record``
    lacks or holds under another definition, in that order. With ``known_only``, only those it
    holds under a recorded fingerprint that differs."""
    have = set(record.get("variables", []))
    stored = (record.get("code") or {}).get("variables") or {}
    return [name for name, fp in fingerprints.items()
            if (name in stored and stored[name] != fp) or (not known_only and (name not in have or name not in stored))]
