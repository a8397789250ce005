"""A sweep's folder: its config, which runs of the store make its grid, and its collected results.

``<out>/sweep.yaml`` is the sweep's config as given (overrides applied, values normalised,
defaults not filled in): run it again and it is the same sweep, under the defaults of the day.
``<out>/grid.json`` names the run store, the resolved config (every setting, the dataset's and
model's parameters with their defaults: what readers of the results see) and each grid point's
run hash, in grid order; ``<out>/results.nc`` is the collected grid. Reading a folder needs
neither torch nor the registries that planned it, so ``lrsc status --quick`` and ``lrsc
collect`` stay light and work for sweeps of any user's datasets.
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lrsc import netcdf
from lrsc.config import axes, axis_path, get, yaml_load
from lrsc.errors import ConfigError
from lrsc.store import FINISHED, RunStore, State, read_json, write_bytes, write_text

if TYPE_CHECKING:
    import xarray as xr

    from lrsc.plan import Run


def check_out(out_dir: str | Path) -> Path:
    """``out_dir`` as a sweep folder that can be written; raises ConfigError before anything is written."""
    if out_dir is None or str(out_dir).strip() == "":
        raise ConfigError("--out must name a folder for the sweep's results, got an empty path")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder for the sweep's results")
    existing = next((p for p in (out.absolute(), *out.absolute().parents) if p.exists()), Path("/"))
    try:  # a real probe: permissions, read-only and virtual filesystems all refuse it alike
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise ConfigError(f"cannot write under {str(existing)!r} (for --out {str(out)!r}); choose a folder you can "
                          f"write to") from None
    return out


def write(out: Path, given: dict, resolved: dict, runs: list[Run], store_root: Path) -> None:
    """Write the sweep's config as ``given`` and, with the ``resolved`` config, its grid's run
    hashes into ``out``."""
    write_text(yaml.safe_dump(given, sort_keys=False), out / "sweep.yaml")
    grid = {"store": os.path.relpath(store_root.resolve(), out.resolve()), "dims": axes(resolved),
            "axes": list(resolved["grid"]), "hashes": [r.hash for r in runs], "title": resolved.get("title", ""),
            "config": resolved}
    write_text(json.dumps(grid, indent=1), out / "grid.json")


def write_results(out: Path, results: xr.Dataset, provenance: xr.Dataset) -> None:
    """Write ``results.nc`` (the results) and ``provenance.nc`` beside it (the runs' provenance),
    the provenance first: a ``results.nc`` is never newer than the provenance of its runs. Two
    files rather than a group of one, since a file with groups must be netCDF-4, 30 times as slow
    to read (:mod:`lrsc.netcdf`)."""
    write_bytes(netcdf.dumps(provenance), out / "provenance.nc")
    write_bytes(netcdf.dumps(results), out / "results.nc")


def read_given(out_dir: str | Path) -> dict:
    """The config a sweep stored in ``out_dir/sweep.yaml``: as it was given, to run it again."""
    path = Path(out_dir) / "sweep.yaml"
    if not path.is_file():
        raise ConfigError(f"no sweep.yaml in {str(out_dir)!r}; give the --out folder of an lrsc sweep")
    try:
        cfg = yaml_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        cfg = None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("grid"), dict):
        raise ConfigError(f"{path} is damaged (not a sweep config); run the sweep again to rewrite it")
    return cfg


def read_config(out_dir: str | Path) -> dict:
    """The sweep's resolved config (every setting, the dataset's and model's parameters with their
    defaults, its grid and title), as its ``grid.json`` holds it."""
    return read_grid(out_dir)["config"]


def read_grid(out_dir: str | Path) -> dict:
    """The sweep's ``grid.json``: its store (resolved), dims, axes, run hashes in grid order and
    resolved config."""
    out = Path(out_dir)
    grid = read_json(out / "grid.json")
    if not isinstance(grid, dict) or not {"store", "dims", "axes", "hashes", "config"} <= set(grid) or \
            not isinstance(grid["dims"], dict) or len(grid["hashes"]) != len(points(grid)):
        raise ConfigError(f"no readable grid.json in {str(out)!r}; give the --out folder of an lrsc sweep, or run "
                          f"the sweep again to rewrite it")
    grid["store"] = (out / grid["store"]).resolve()
    return grid


def points(grid: dict) -> list[dict]:
    """``{dim: value}`` of each run of the grid, in the order of its hashes."""
    dims = grid["dims"]
    return [dict(zip(dims, values)) for values in itertools.product(*dims.values())]


def states(out_dir: str | Path) -> list[tuple[dict, str, State]]:
    """``(grid point, run hash, state)`` of every run of the sweep in ``out_dir``, in grid order."""
    grid = read_grid(out_dir)
    store = RunStore(grid["store"])
    return [(point, h, store.state(h)) for point, h in zip(points(grid), grid["hashes"])]


def misplaced(grid: dict, point: dict, record: dict) -> str:
    """Why the stored run of ``record`` is not the run of ``grid`` at ``point`` (``""`` when it is):
    a ``grid.json`` whose hashes were edited or reordered would put one run's results at another's
    place."""
    for axis, dim in zip(grid["axes"], grid["dims"]):
        try:
            value = get(record.get("config", {}), axis_path(axis))
        except (KeyError, TypeError):
            return f"its record holds no {axis_path(axis)}"
        if value != point[dim]:
            return f"grid.json places it at {dim}={point[dim]!r}, but it was trained with {dim}={value!r}"
    return ""


def check_grid(out_dir: str | Path) -> None:
    """Raise ConfigError when ``grid.json`` places a finished run at a grid point other than its
    own, naming the run and how to fix it."""
    grid = read_grid(out_dir)
    store = RunStore(grid["store"])
    for point, h in zip(points(grid), grid["hashes"]):
        state = store.state(h, verify=False)  # a damaged run is no evidence: it is set aside
        why = misplaced(grid, point, state.record) if state.status in FINISHED else ""
        if why:
            raise ConfigError(f"{Path(out_dir) / 'grid.json'} does not match its runs: run {h} {why}; run the sweep "
                              f"again to rewrite it")


def failures(out_dir: str | Path) -> list[tuple[str, str]]:
    """``(run hash, last line of its error)`` of every failed run of the sweep, in grid order."""
    return [(h, last_line(state.record.get("error", ""))) for _, h, state in states(out_dir) if state.status == "failed"]


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a traceback's error), or ``""``."""
    lines = str(text).strip().splitlines()
    return lines[-1] if lines else ""


def save_derived(out_dir: str | Path, name: str, ds: xr.Dataset) -> None:
    """Store a result a chapter derived from the sweep (``<out>/derived/<name>.nc``) for other pages to read."""
    write_bytes(netcdf.dumps(ds), Path(out_dir) / "derived" / f"{name}.nc")


def load_derived(out_dir: str | Path, name: str) -> xr.Dataset | None:
    """A result derived from the sweep by :func:`save_derived`, or None when none is stored."""
    path = Path(out_dir) / "derived" / f"{name}.nc"
    return netcdf.loads(path.read_bytes()) if path.is_file() else None
