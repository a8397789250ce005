"""A sweep's folder: its config, which runs of the store make its grid, and its collected results.

``<out>/sweep.yaml`` is the sweep's config (its grid's values normalised); ``<out>/grid.json``
names the run store and each grid point's run hash, in grid order; ``<out>/results.nc`` is the
collected grid. Reading a folder needs neither torch nor the registries that planned it, so
``lrsc status`` and ``lrsc collect`` stay light and work for sweeps of any user's datasets.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lrsc.errors import ConfigError
from lrsc.store import RunStore, State, read_json, write_text

if TYPE_CHECKING:
    import xarray as xr

    from lrsc.units import Run


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


def write(out: Path, cfg: dict, runs: list[Run], store_root: Path) -> None:
    """Write the sweep's config and its grid's run hashes into ``out``."""
    from lrsc.config import axes

    write_text(yaml.safe_dump(cfg, sort_keys=False), out / "sweep.yaml")
    grid = {"store": os.path.relpath(store_root.resolve(), out.resolve()), "dims": axes(cfg),
            "axes": list(cfg["grid"]), "hashes": [r.hash for r in runs], "title": cfg.get("title", "")}
    write_text(json.dumps(grid, indent=1), out / "grid.json")


def write_results(out: Path, results: xr.Dataset, provenance: xr.Dataset) -> None:
    """Write ``results.nc``: the results, and the runs' provenance as its ``provenance`` group."""
    from lrsc.store import atomic

    with atomic(out / "results.nc") as tmp:
        results.to_netcdf(tmp, engine="h5netcdf")
        provenance.to_netcdf(tmp, group="provenance", mode="a", engine="h5netcdf")


def read_config(out_dir: str | Path) -> dict:
    """The config a sweep stored in ``out_dir/sweep.yaml``."""
    path = Path(out_dir) / "sweep.yaml"
    if not path.is_file():
        raise ConfigError(f"no sweep.yaml in {str(out_dir)!r}; give the --out folder of an lrsc sweep")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        cfg = None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("grid"), dict):
        raise ConfigError(f"{path} is damaged (not a sweep config); run the sweep again to rewrite it")
    return cfg


def read_grid(out_dir: str | Path) -> dict:
    """The sweep's ``grid.json``: its store (resolved), dims, axes and run hashes in grid order."""
    out = Path(out_dir)
    grid = read_json(out / "grid.json")
    if grid is None and (out / "runs").is_dir():
        raise ConfigError(f"{out} was written by an older lrsc (runs/ inside the sweep folder); run the sweep again "
                          f"to move its runs into the shared run store (nothing is trained again)")
    if not isinstance(grid, dict) or not {"store", "dims", "hashes"} <= set(grid):
        raise ConfigError(f"no readable grid.json in {str(out)!r}; give the --out folder of an lrsc sweep, or run "
                          f"the sweep again to rewrite it")
    grid["store"] = (out / grid["store"]).resolve()
    return grid


def points(grid: dict) -> list[dict]:
    """``{dim: value}`` of each run of the grid, in the order of its hashes."""
    import itertools

    dims = grid["dims"]
    return [dict(zip(dims, values)) for values in itertools.product(*dims.values())]


def states(out_dir: str | Path) -> list[tuple[dict, str, State]]:
    """``(grid point, run hash, state)`` of every run of the sweep in ``out_dir``, in grid order."""
    grid = read_grid(out_dir)
    store = RunStore(grid["store"])
    return [(point, h, store.state(h)) for point, h in zip(points(grid), grid["hashes"])]


def failures(out_dir: str | Path) -> list[tuple[str, str]]:
    """``(run hash, last line of its error)`` of every failed run of the sweep, in grid order."""
    return [(h, last_line(state.record.get("error", ""))) for _, h, state in states(out_dir) if state.status == "failed"]


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a traceback's error), or ``""``."""
    lines = str(text).strip().splitlines()
    return lines[-1] if lines else ""


def save_derived(out_dir: str | Path, name: str, ds: xr.Dataset) -> None:
    """Store a result a chapter derived from the sweep (``<out>/derived/<name>.nc``) for other pages to read."""
    from lrsc.store import atomic

    with atomic(Path(out_dir) / "derived" / f"{name}.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def load_derived(out_dir: str | Path, name: str) -> xr.Dataset | None:
    """A result derived from the sweep by :func:`save_derived`, or None when none is stored."""
    import xarray as xr

    path = Path(out_dir) / "derived" / f"{name}.nc"
    return xr.load_dataset(path, engine="h5netcdf") if path.is_file() else None
