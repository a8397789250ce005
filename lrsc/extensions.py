"""Datasets, models and variables registered outside lrsc: imported as plugins, and carried with a
sweep to its workers.

A *plugin* is a Python module, or a ``.py`` file, that registers datasets, models or variables
when it is imported: ``lrsc sweep --import mymodule`` or a sweep file's ``plugins: [mymodule,
my_file.py]`` names it, and :func:`load_plugins` imports it before the sweep is planned (a
module name from the current folder or the Python path; a file by its path).

A worker process, a Dask worker or a SLURM job imports lrsc afresh: it knows the built-in
registry entries, but not the ones a user registered in a notebook or a script (a notebook's
functions live in its ``__main__``, which no other process can import). So every unit a sweep
submits carries :func:`snapshot`, the user's entries pickled *by value* with cloudpickle, and
the worker calls :func:`install` before it trains. Entries from importable modules pickle by
reference and are imported there as usual, except a plugin's, which pickle by value too (a
worker need not have the plugin on its path).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import cloudpickle

from lrsc.errors import ConfigError


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


def _import(plugin: str) -> ModuleType:
    """The module of ``plugin``: a ``.py`` file's path, else a module name, found from the current
    folder first (as ``python -m`` would), then on the Python path."""
    if plugin.endswith(".py"):
        path = Path(plugin).resolve()
        if not path.is_file():
            raise ConfigError(f"plugin {plugin!r}: no such file; give the path of a .py file or a module name")
        name = path.stem
        known = sys.modules.get(name)
        if known is not None:
            if Path(getattr(known, "__file__", "") or "").resolve() == path:
                return known
            raise ConfigError(f"plugin {plugin!r}: a module named {name!r} is imported already from elsewhere; "
                              f"rename the file")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    here = str(Path.cwd())
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(plugin)
    finally:
        if added:
            sys.path.remove(here)


def load_plugins(plugins: list[str]) -> None:
    """Import each of ``plugins`` (module names or ``.py`` paths), which register their datasets,
    models and variables; a module imported already is not imported again. Each is then pickled
    by value when a sweep ships its entries to workers (:func:`snapshot`), so a worker process,
    a Dask worker or a SLURM job runs it without having it on its path. Raises ConfigError when a
    plugin cannot be found or raises while it is imported."""
    for plugin in plugins:
        try:
            module = _import(plugin)
        except ConfigError as e:
            if str(e).startswith("plugin "):
                raise
            raise ConfigError(f"plugin {plugin!r}: {e}") from None  # e.g. it registers a name that is taken
        except ModuleNotFoundError as e:
            raise ConfigError(f"plugin {plugin!r} cannot be imported: {e}; give a module importable from the "
                              f"current folder or the Python path, or the path of a .py file") from None
        except Exception as e:  # the plugin's own code failed: say which plugin, in one line
            raise ConfigError(f"plugin {plugin!r} raised while it was imported: {type(e).__name__}: "
                              f"{' '.join(str(e).split())}") from None
        cloudpickle.register_pickle_by_value(module)
