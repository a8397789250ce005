"""The sweeps each chapter of a book profile runs, read from the chapters' parameters before anything trains.

A chapter runs its sweeps through :meth:`lrsc.chapter.Chapter.sweep`: the sweep files its
parameters name, some with changes its parameters fix (the Fig. 6 hyperparameter sweeps, the
supplement's schemes), and some at LRs taken from another sweep's results (a data-settings
sweep repeats its chapter's main sweep at two of its compared LRs, see
:func:`lrsc.report.compared_ends`). :data:`CHAPTERS` declares that list for each chapter as a
function of the chapter's parameters (what its notebook does with them); :func:`declared`
reads it for a profile. ``lrsc book`` on a cluster engine trains these sweeps before the
chapters run, and ``lrsc plan`` counts and times their runs.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import xarray as xr
import yaml

from lrsc import hyper, report
from lrsc.errors import ConfigError


@dataclass(frozen=True)
class Sweep:
    """One sweep a chapter runs: under ``role`` (the role its claims are judged on), from the
    sweep file ``params`` into ``results / folder``, with ``changes`` (``{dotted key: value}``, the
    chapter's overrides included) over the file; ``lrs_of``: ``(folder, span)`` when its
    ``grid.lr`` is the pair of LRs :func:`lrsc.report.compared_ends` picks at ``span`` from the
    results of the chapter's sweep in ``folder``."""

    chapter: str
    role: str
    params: Path
    results: Path
    folder: str
    changes: dict = field(default_factory=dict)
    lrs_of: tuple[str, float] | None = None

    @property
    def out(self) -> Path:
        """The sweep's folder."""
        return self.results / self.folder

    @property
    def source(self) -> Path | None:
        """The folder of the sweep whose results give this one's LRs, if any."""
        return self.results / self.lrs_of[0] if self.lrs_of else None

    def given(self, source: xr.Dataset | None = None) -> dict:
        """The changes the chapter makes to the sweep file: :attr:`changes`, and ``grid.lr`` from
        the collected results ``source`` of the sweep :attr:`lrs_of` names."""
        if self.lrs_of is None:
            return dict(self.changes)
        ends = report.compared_ends(source, self.lrs_of[1])
        return {**self.changes, "grid.lr": [ends[0], ends[-1]]}

    def at(self, lrs: list[float]) -> dict:
        """The changes with ``grid.lr`` the pair :func:`lrsc.report.ends_among` picks among ``lrs``:
        what :meth:`given` gives when those are the source sweep's compared LRs."""
        ends = report.ends_among(lrs, self.lrs_of[1])
        return {**self.changes, "grid.lr": [ends[0], ends[-1]]}

    @property
    def key(self) -> str:
        """What makes two declarations one sweep (chapters that share a sweep declare it each)."""
        return json.dumps([str(self.out), self.changes, self.lrs_of], sort_keys=True, default=str)


# (role, sweep file, folder or None for the file's stem, changes or None, lrs_of or None) -> Sweep
Make = Callable[..., Sweep]


def _stem(path: str) -> str:
    return Path(path).stem


def _paths(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _fig3(p: dict, sweep: Make) -> list[Sweep]:
    return [sweep("parity", p["parity_params"]),
            sweep("settings", p["settings_params"], lrs_of=(_stem(p["parity_params"]), p["settings_span"])),
            sweep("moon_star", p["moon_star_params"])]


def _fig4(p: dict, sweep: Make) -> list[Sweep]:
    main = _paths(p["sweep_params"])  # the data settings repeat the first sweep at two of its LRs
    return [*(sweep("sweeps", s) for s in main),
            sweep("settings", p["settings_params"], lrs_of=(_stem(main[0]), p["settings_span"]))]


def _fig6(p: dict, sweep: Make) -> list[Sweep]:
    lr_sweep = p["sweep_params"]
    return [sweep("lr", lr_sweep),
            *(sweep("hp", lr_sweep, f"hp_{key}", hyper.changes(key, values, p["small_lr"], p["hp_seeds"]))
              for key, values in p["ranges"].items()),
            sweep("high_lr_l2", lr_sweep, "hp_high_lr_l2",
                  hyper.changes("weight_decay", p["l2_values"], p["high_lr"], p["hp_seeds"]))]


def _schemes(p: dict, sweep: Make) -> list[Sweep]:
    constant, seeds = p["sweep_params"], p["scheme_seeds"]
    high, low = p["switch_lrs"]
    return [sweep("constant", constant),
            *(sweep("schemes", constant, f"scheme_{key}", {"grid.seed": seeds, **scheme["overrides"]})
              for key, scheme in p["schemes"].items()),
            sweep("switch", constant, "scheme_switch", {"grid.lr": [high], "grid.seed": seeds, "train.schedule": "step",
                                                        "train.schedule_factor": low / high,
                                                        "grid.schedule_at": p["switch_steps"]})]


def _baselines(p: dict, sweep: Make) -> list[Sweep]:
    held_out = {"metrics.val_frac": p["val_frac"]}
    out = []
    for task in _paths(p["tasks"]):
        out.append(sweep("erm", task, f"{_stem(task)}_erm", held_out))
        out += [sweep("methods", task, f"{_stem(task)}_{method}", {**held_out, "train.method": method, **own})
                for method, own in p["methods"].items()]
    return out


def _listed(*roles: tuple[str, str]) -> Callable[[dict, Make], list[Sweep]]:
    """A chapter that runs, under each ``(role, parameter)``, the sweep files its parameter names, unchanged."""

    def declare(p: dict, sweep: Make) -> list[Sweep]:
        return [sweep(role, s) for role, name in roles for s in _paths(p[name])]

    return declare


# Per chapter, its sweeps as a function of its parameters; a chapter not named here runs none.
CHAPTERS: dict[str, Callable[[dict, Make], list[Sweep]]] = {
    "fig3_parity": _fig3,
    "fig4_datasets": _fig4,
    "fig5_representations": _listed(("sweeps", "sweep_params")),
    "fig6_hyperparameters": _fig6,
    "fig7_naturalistic": _listed(("sweeps", "sweep_params")),
    "fig8_10_11_standard": _listed(("sweeps", "sweep_params"), ("sweeps", "maps_sweep")),
    "fig12_13_mechanism": _listed(("sweeps", "sweep_params"), ("dynamics", "dynamics_params")),
    "supplement_schemes": _schemes,
    "baselines": _baselines,
}


def parameter_defaults(root: Path, chapter: str) -> dict:
    """The values a chapter's parameters cell assigns (``book/x`` for ``book/x.py``), by name."""
    import jupytext

    nb = jupytext.read(root / f"{chapter}.py")
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}


def given_parameters(params_dir: Path, chapter: str, overrides: dict | None = None) -> dict:
    """The parameters ``params_dir/<chapter>.yaml`` gives a chapter (``order`` and ``leave_out`` are
    for ``lrsc book`` alone), with ``overrides`` added to its ``overrides`` parameter."""
    path = params_dir / f"{Path(chapter).name}.yaml"
    params = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}  # a page without parameters
    for key in ("order", "leave_out"):
        params.pop(key, None)
    if overrides:
        params["overrides"] = {**params.get("overrides", {}), **overrides}
    return params


def declared(root: Path, chapter: str, given: dict) -> list[Sweep]:
    """The sweeps ``chapter`` runs with the parameters ``given`` (over its notebook's defaults),
    in the order it runs them, each once; sweep files and results folders are relative to ``root``."""
    declare = CHAPTERS.get(Path(chapter).name)
    if declare is None:
        return []
    p = {**parameter_defaults(root, chapter), **given}
    results = root / p["results_dir"]
    overrides = dict(p.get("overrides") or {})

    def sweep(role: str, params: str, folder: str | None = None, changes: dict | None = None,
              lrs_of: tuple[str, float] | None = None) -> Sweep:
        path = root / params
        if not path.is_file():
            raise ConfigError(f"chapter {Path(chapter).name}: sweep file {params!r} not found under {root}")
        return Sweep(Path(chapter).name, role, path, results, folder or path.stem, {**overrides, **(changes or {})},
                     lrs_of)

    return unique(declare(p, sweep))  # a chapter may name one sweep file twice (Fig. 8's maps sweep)


def unique(sweeps: list[Sweep]) -> list[Sweep]:
    """``sweeps`` with each sweep once (the first chapter to declare it keeps it), in order."""
    seen, out = set(), []
    for s in sweeps:
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out
