"""Datasets, models and variables registered outside lrsc travel with a sweep to its workers.

A worker process, a Dask worker or a SLURM job imports lrsc afresh: it knows the built-in
registry entries, but not the ones a user registered in a notebook or a script (a notebook's
functions live in its ``__main__``, which no other process can import). So every unit a sweep
submits carries :func:`snapshot`, the user's entries pickled *by value* with cloudpickle, and
the worker calls :func:`install` before it trains. Entries from importable modules pickle by
reference and are imported there as usual.
"""
from __future__ import annotations

import cloudpickle


def _registries() -> dict:
    from lrsc import datasets, models, variables

    return {"dataset": datasets.REGISTRY, "model": models.REGISTRY, "variable": variables.REGISTRY}


def snapshot() -> bytes | None:
    """The entries registered outside lrsc in this process, pickled by value (None when there are none)."""
    entries = {kind: registry.extensions() for kind, registry in _registries().items()}
    if not any(entries.values()):
        return None
    return cloudpickle.dumps(entries)


def install(blob: bytes | None) -> None:
    """Register the entries of a :func:`snapshot` in this process (replacing same-named ones)."""
    if blob is None:
        return
    registries = _registries()
    for kind, entries in cloudpickle.loads(blob).items():
        for name, entry in entries.items():
            registries[kind].add(name, entry, replace=True)
