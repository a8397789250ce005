"""One book chapter's work, in one object: its sweeps, the roles its claims are judged on, its
ledger, and the values, figures and tables it glues into its page.

A chapter notebook makes a :class:`Chapter` from its parameters, runs each sweep through
:meth:`Chapter.sweep` (which records the sweep's folder under the role its claims name, see
:data:`lrsc.claims.CLAIMS`), and glues what it shows with :meth:`~Chapter.glue`,
:meth:`~Chapter.figure`, :meth:`~Chapter.quote_config` and :meth:`~Chapter.verdicts`; prose
states claims through :meth:`~Chapter.says`, by their declared handle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import xarray as xr

from lrsc import claims, report
from lrsc.engines import Choice
from lrsc.errors import ConfigError
from lrsc.paths import resolve
from lrsc.progress import notices_to_stderr
from lrsc.results import config_values, title
from lrsc.sweep import run_sweep


class Chapter:
    """The chapter ``name`` (e.g. ``fig3_parity``), storing its sweeps under ``results_dir``.

    overrides: ``{dotted key: value}`` applied to every sweep it runs (a chapter's ``overrides``
    parameter, what ``lrsc book --set`` changes); progress: show progress bars. Its sweeps train
    through the engine ``lrsc book`` chose (:meth:`lrsc.engines.Choice.from_env`; by default in
    this process).
    """

    def __init__(self, name: str, results_dir: str | Path, overrides: dict | None = None, progress: bool = False):
        notices_to_stderr()  # each sweep's runs by status as it ends: what lrsc book shows while the chapter runs
        self.name, self.out = name, resolve(results_dir)
        self.overrides, self.progress = dict(overrides or {}), progress
        self.engine = Choice.from_env()
        self._roles: dict[str, list[str]] = {}
        self._table: pd.DataFrame | None = None
        pd.set_option("display.max_colwidth", None)  # a page shows its tables' cells whole

    def sweep(self, role: str, params: str | Path, *, folder: str | None = None, title_: str | None = None,
              changes: dict | None = None) -> xr.Dataset:
        """Run (or read from the run store) the sweep of ``params`` with ``changes`` (``{dotted key:
        value}``, over the chapter's overrides) into ``<results>/<folder>`` (default: the params
        file's stem), titled ``title_`` for readers where given, and record it under ``role``."""
        path = resolve(params)
        folder = folder or path.stem
        given = {**self.overrides, **(changes or {}), **({"title": title_} if title_ else {})}
        ds = run_sweep(path, self.out / folder, given, progress=self.progress, **self.engine.sweep_options())
        if role:
            entries = self._roles.setdefault(role, [])
            if folder not in entries:
                entries.append(folder)
            claims.record(self.out, self.name, {role: entries})
        self._table = None
        return ds

    def sweeps(self, role: str, params: list[str | Path]) -> dict[str, xr.Dataset]:
        """:meth:`sweep` of each of ``params`` under ``role``: ``{title: dataset}`` in the order given."""
        results = {}
        for p in params:
            ds = self.sweep(role, p)
            results[title(ds)] = ds
        return results

    def folder(self, name: str) -> Path:
        """The folder of a sweep this chapter stored (for what it derives from the sweep's runs)."""
        return self.out / name

    @property
    def table(self) -> pd.DataFrame:
        """This chapter's ledger rows (:func:`lrsc.claims.ledger`) on the sweeps it recorded."""
        if self._table is None:
            self._table = claims.ledger(self.out, self.name)
        return self._table

    def says(self, claim_id: str, folder: str | None = None, trend: bool = True) -> str:
        """:func:`lrsc.report.says` for declared claim ``claim_id`` (on ``folder`` where its role has
        several sweeps); raises ConfigError for a claim that is not this chapter's."""
        if claims.get(claim_id).chapter != self.name:
            raise ConfigError(f"claim {claim_id} belongs to chapter {claims.get(claim_id).chapter}, "
                                     f"not {self.name}")
        return report.says(self.table, claim_id, folder, trend)

    def glue(self, name: str, value: Any) -> None:
        """Glue ``value`` for the page's prose (``{glue:text}`name```) without showing it here."""
        from myst_nb import glue

        glue(name, value, display=False)

    def figure(self, name: str, fig) -> None:
        """Glue a matplotlib figure for a ``glue:figure`` directive, and close it."""
        self.glue(name, fig)
        plt.close(fig)

    def markdown(self, name: str, text: str) -> None:
        """Glue Markdown for a ``glue:md`` directive."""
        from IPython.display import Markdown

        self.glue(name, Markdown(text))

    def quote_config(self, prefix: str, ds: xr.Dataset) -> None:
        """Glue each scalar setting of a stored sweep as ``<prefix>_cfg_<key>``, for quoting in prose."""
        for key, value in config_values(ds).items():
            self.glue(f"{prefix}_cfg_{key}", value)

    def verdicts(self, name: str) -> None:
        """Glue the chapter's verdict table (Markdown) as ``name``."""
        self.markdown(name, report.ledger_markdown(self.table))
