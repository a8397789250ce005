"""The paper's claims that the book tests, each judged by the one verdict rule of :mod:`lrsc.verdicts`.

A :class:`Claim` names the paper's figure, the statement, the chapter that shows it, and a
judge: a function of the stored results under a ``results_dir`` (sweep folders, and what a
chapter derived from them) that gives one or more :class:`Row` (a claim about several
settings, such as one per switch step, gives one row per setting). Each chapter ends with
:func:`table` of its own claims; the claims page shows :func:`ledger`, the union of those
tables, so no two pages can word a verdict differently. A claim whose sweeps this build did
not run gives no row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import mechanism, report, settings, sweepdir, variables, verdicts
from lrsc.collect import load
from lrsc.report import title
from lrsc.verdicts import Verdict


@dataclass(frozen=True)
class Row:
    """One judged statement: ``on`` names the results it is judged on (for readers)."""

    statement: str
    on: str
    verdict: Verdict


class Results:
    """The stored results under ``results_dir``, each read once."""

    def __init__(self, results_dir: str | Path):
        self.root = Path(results_dir)

    @lru_cache(maxsize=None)
    def sweep(self, folder: str) -> xr.Dataset | None:
        path = self.root / folder / "results.nc"
        return load(path) if path.is_file() else None

    @lru_cache(maxsize=None)
    def derived(self, folder: str, name: str) -> xr.Dataset | None:
        return sweepdir.load_derived(self.root / folder, name)


Judge = Callable[[Results], list[Row]]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: ``id``, the paper's ``figure``, the ``chapter`` (a page of the book)
    that shows it, and its ``judge``."""

    id: str
    figure: str
    chapter: str
    judge: Judge
    folder: str = ""  # the sweep judged, where it is one
    variable: str = ""  # the variable judged, where it is one


def _sentence(phrase: str) -> str:
    """``phrase`` with its first letter capitalised (and the rest as it is: "CSI" stays "CSI")."""
    return phrase[:1].upper() + phrase[1:]


def _moves(expected: int) -> str:
    return {1: "rises", -1: "falls", 0: "changes"}[expected]


def trend_claims(prefix: str, figure: str, chapter: str, folders: tuple[str, ...],
                 checks: tuple[tuple[str, int], ...]) -> list[Claim]:
    """For each sweep folder and ``(variable, expected direction)``: the variable moves that way with LR."""

    def judge(folder: str, var: str, expected: int) -> Judge:
        def rows(res: Results) -> list[Row]:
            ds = res.sweep(folder)
            if ds is None or var not in ds:
                return []
            statement = f"{_sentence(variables.get(var).phrase)} {_moves(expected)} with the learning rate."
            return [Row(statement, title(ds), verdicts.trend(ds, var, expected))]
        return rows

    return [Claim(f"{prefix}.{folder}.{var}", figure, chapter, judge(folder, var, expected), folder, var)
            for folder in folders for var, expected in checks]


def correlation_claim(id: str, figure: str, chapter: str, folders: tuple[str, ...], x: str, y: str) -> Claim:
    """Over every compared run of the stored ``folders``, ``y`` rises with ``x`` (centred per sweep)."""

    def rows(res: Results) -> list[Row]:
        loaded = {f: ds for f in folders if (ds := res.sweep(f)) is not None and x in ds}
        if not loaded:
            return []
        runs = mechanism.runs_table(loaded, x=x, y=y)
        verdict = verdicts.correlation(runs[x], runs[y], runs["sweep"], expected=1)
        statement = (f"Over runs, a higher peak of {variables.get(x).phrase.removeprefix('the largest ')} goes with "
                     f"higher {variables.get(y).phrase}.")
        return [Row(statement, f"{len(loaded)} sweeps pooled", verdict)]

    return Claim(id, figure, chapter, rows)


def settings_claims(id: str, figure: str, chapter: str, folder: str, var: str = "test_acc") -> Claim:
    """Per data setting of a settings sweep (dims ``(*settings, lr, seed)``): the largest LR beats the smallest."""

    def rows(res: Results) -> list[Row]:
        ds = res.sweep(folder)
        if ds is None:
            return []
        lo, hi = float(ds.lr.min()), float(ds.lr.max())
        return [Row(f"{_sentence(variables.get(var).phrase)} is higher at LR {hi:g} than at LR {lo:g} ({setting}).",
                    title(ds), verdict) for setting, verdict in report.settings_verdicts(ds, var)]

    return Claim(id, figure, chapter, rows)


def both_claim(folder: str) -> Claim:
    """Fig. 6: over its range, the LR raises unbiased accuracy *and* prunability; any other
    setting (swept at a small LR, moved the way it acts like a larger LR) does not raise both.
    The setting is the sweep's axis besides ``lr`` and ``seed``."""

    def rows(res: Results) -> list[Row]:
        ds = res.sweep(folder)
        if ds is None:
            return []
        axes = [d for d in ds.test_acc.dims if d not in ("lr", "seed")]
        key = axes[0] if axes else "lr"
        ds = ds.isel(lr=0) if key != "lr" else ds
        sign = settings.TRAIN[key].like_lr or 1
        parts = {var: verdicts.trend(ds, var, 1, axis=key, sign=sign) for var in ("test_acc", "prunability")}
        statement = ("Over its range, the learning rate raises both unbiased accuracy and prunability." if key == "lr"
                     else f"Over its range at a small LR, {settings.TRAIN[key].name} does not raise both unbiased "
                          f"accuracy and prunability.")
        return [Row(statement, title(ds), verdicts.both(parts, expected=1 if key == "lr" else -1))]

    return Claim(f"fig6.{folder}.both", "Fig. 6, Tab. 2", "fig6_hyperparameters", rows, folder)


def derived_claim(id: str, figure: str, chapter: str, folder: str, name: str,
                  judge: Callable[[xr.Dataset], list[tuple[str, Verdict]]]) -> Claim:
    """A claim judged on what a chapter derived from a sweep (``<folder>/derived/<name>.nc``)."""

    def rows(res: Results) -> list[Row]:
        ds, sweep = res.derived(folder, name), res.sweep(folder)
        if ds is None or sweep is None:
            return []
        return [Row(statement, title(sweep), verdict) for statement, verdict in judge(ds)]

    return Claim(id, figure, chapter, rows)


def sweep_claim(id: str, figure: str, chapter: str, folder: str,
                judge: Callable[[xr.Dataset, Results], list[tuple[str, Verdict]]], needs: tuple[str, ...] = ()) -> Claim:
    """A claim judged on one stored sweep by a judge of its own (e.g. the Fig. 13 dynamics), when the
    sweep holds the variables it ``needs``."""

    def rows(res: Results) -> list[Row]:
        ds = res.sweep(folder)
        if ds is None or any(v not in ds for v in needs):
            return []
        return [Row(statement, title(ds), verdict) for statement, verdict in judge(ds, res)]

    return Claim(id, figure, chapter, rows)


def _switch(ds: xr.Dataset, res: Results, constant: tuple[str, ...]) -> list[tuple[str, Verdict]]:
    """Supplement Fig. 30 (left): per switch step t, training at the large LR up to t and at the
    small LR after it keeps more than half of the large LR's accuracy gain (paired over seeds
    with the constant-LR runs, which share each seed's initialisation)."""
    base = next((d for f in constant if (d := res.sweep(f)) is not None), None)
    cfg = json.loads(ds.attrs["config"])
    ds = ds.isel(lr=0)
    high, low = ds.lr.item(), ds.lr.item() * cfg["train"]["schedule_factor"]
    if base is None or not {high, low} <= set(base.lr.values.tolist()):
        return []
    seeds = [s for s in ds.seed.values.tolist() if s in base.seed.values.tolist()]
    ends = base.test_acc.sel(seed=seeds)
    middle = (ends.sel(lr=low) + ends.sel(lr=high)) / 2
    scale, units, _ = verdicts.presentation(ds.test_acc)
    rows = []
    for t in ds.schedule_at.values:
        kept = ds.test_acc.sel(schedule_at=t, seed=seeds)
        statement = (f"Switching from LR {high:g} to LR {low:g} after step {int(t)} keeps more than half of the large "
                     f"LR's accuracy gain (above the midpoint of the two constant-LR runs).")
        rows.append((statement, verdicts.contrast(middle.values, kept.values, 1, units=units, scale=scale)))
    return rows


def _l2_adds(ds: xr.Dataset) -> list[tuple[str, Verdict]]:
    """Fig. 6: L2 adds to a large LR: at the large LR, a larger L2 penalty raises accuracy and prunability."""
    lr, ds = float(ds.lr[0]), ds.isel(lr=0)
    return [(f"At LR {lr:g}, a larger L2 penalty raises {variables.get(var).phrase} (L2 adds to a large LR).",
             verdicts.trend(ds, var, 1, axis="weight_decay")) for var in ("test_acc", "prunability")]


def _soups(ds: xr.Dataset, res: Results, folder: str) -> list[tuple[str, Verdict]]:
    from lrsc import soup

    soups = res.derived(folder, "soups")
    if soups is None:
        return []
    return soup.judge(soups, *mechanism.low_high(ds))


def _deeplift(ds: xr.Dataset) -> list[tuple[str, Verdict]]:
    """Supplement Fig. 14: DeepLift gives IG's picture: with DeepLift attributions too, attribution
    entropy and the background share fall from the smallest to the largest compared LR."""
    rows = []
    for var, phrase in (("attr_entropy", "attribution entropy"), ("bg_share", "the background's share of attribution")):
        if var in ds and ds[var].notnull().any():
            dl = ds[var].sel(attribution="DeepLift")
            rows.append((f"With DeepLift attributions, {phrase} falls from the smallest to the largest compared LR.",
                         verdicts.contrast(dl.sel(end="low"), dl.sel(end="high"), -1)))
    return rows


FIG4 = tuple(f"fig4_{d}_{m}" for d in ("colored_mnist", "double_mnist", "mnist_cifar", "corrupted_cifar10")
             for m in ("fcn", "cnn", "resnet18", "resnet50", "wrn101_2"))
SCHEMES = ("scheme_adam", "scheme_adamw_cosine", "scheme_psgd_kron_wsd", "scheme_step_decay", "scheme_stop_loss",
           "scheme_extra_steps")
# The sweep folders each chapter judges, by role, where the chapter recorded none (see :func:`record`):
# the quick and the full profile's folder names.
DEFAULT_ROLES: dict[str, dict[str, list[str]]] = {
    "fig3_parity": {"main": ["parity"], "moon_star": ["moon_star"], "settings": ["parity_settings"]},
    "fig4_datasets": {"sweeps": list(FIG4), "settings": ["fig4_settings"]},
    "fig5_representations": {"sweeps": ["parity", *FIG4]},
    "fig6_hyperparameters": {"lr": ["hp_parity", "hp_colored_mnist_resnet18"],
                             "hp": [f"hp_{k}" for k in ("batch_size", "momentum", "l1", "weight_decay", "focal_gamma",
                                                         "asam_rho")], "high_lr_l2": ["hp_high_lr_l2"]},
    "fig7_naturalistic": {"sweeps": ["fig7_moon_star_vit", "fig7_mnist_cifar_vit", "fig7_celeba_swin_t",
                                     "fig7_waterbirds_swin_t"]},
    "fig8_10_11_standard": {"sweeps": ["fig8_cifar10_cnn", "fig8_cifar10_resnet18", "fig8_cifar100_resnet18",
                                       "fig8_imagenet_resnet18"]},
    "fig12_13_mechanism": {"sweeps": ["parity", "moon_star", *FIG4], "dynamics": ["parity"]},
    "supplement_schemes": {"constant": ["hp_parity", "hp_colored_mnist_resnet18"], "schemes": list(SCHEMES),
                           "switch": ["scheme_switch"]},
}
GROW = (("test_acc", 1), ("prunability", 1), ("act_comp", 1))


def _chapter_claims(chapter: str, roles: dict[str, list[str]]) -> list[Claim]:
    """The claims ``chapter`` judges on the sweep folders of its ``roles``."""
    r = lambda role: tuple(roles.get(role, ()))  # noqa: E731
    first = lambda role: r(role)[0] if r(role) else ""  # noqa: E731
    acc_prune = (("test_acc", 1), ("prunability", 1))
    if chapter == "fig3_parity":
        return [*trend_claims("fig3", "Fig. 3", chapter, r("main"), (*GROW, ("attr_core", 1), ("attr_spurious", -1))),
                *trend_claims("fig15", "Fig. 15", chapter, r("moon_star"), GROW),
                *[settings_claims(f"fig3.{f}", "Fig. 3", chapter, f) for f in r("settings")]]
    if chapter == "fig4_datasets":
        return [*trend_claims("fig4", "Fig. 4, 16", chapter, r("sweeps"), GROW),
                *[settings_claims(f"fig4.{f}", "Fig. 4", chapter, f) for f in r("settings")]]
    if chapter == "fig5_representations":
        return trend_claims("fig5", "Fig. 5", chapter, r("sweeps"), (("csi", 1), ("class_sep", 1)))
    if chapter == "fig6_hyperparameters":
        return [*[both_claim(f) for f in (*r("lr"), *r("hp"))],
                *[sweep_claim(f"fig6.{f}.l2", "Fig. 6, Tab. 2", chapter, f, lambda ds, res: _l2_adds(ds),
                              ("test_acc", "prunability")) for f in r("high_lr_l2")]]
    if chapter == "fig7_naturalistic":
        return trend_claims("fig7", "Fig. 7, 19", chapter, r("sweeps"), (("worst_group_acc", 1), *acc_prune[1:],
                                                                         ("csi", 1)))
    if chapter == "fig8_10_11_standard":
        return [*trend_claims("fig8", "Fig. 10, 11", chapter, r("sweeps"),
                              (("test_acc", 1), ("attr_entropy", -1), ("bg_share", -1))),
                *[derived_claim(f"fig14.{f}", "Fig. 14", chapter, f, "attribution_methods", _deeplift)
                  for f in r("sweeps")]]
    if chapter == "fig12_13_mechanism":
        dyn = first("dynamics")
        return [correlation_claim("fig12", "Fig. 12", chapter, r("sweeps"), "max_bc_loss_ratio", "test_acc"),
                sweep_claim("fig13", "Fig. 13", chapter, dyn, lambda ds, res: mechanism.judge_dynamics(ds),
                            ("steps", "logit_norm", "param_norm", "confident_bc", "bc_loss_ratio")),
                derived_claim("prop", "Prop. 1-2", chapter, dyn, "logit_scaling", mechanism.judge_scaling),
                sweep_claim("fig18", "Fig. 18", chapter, dyn, lambda ds, res: mechanism.judge_persistence(ds),
                            ("neuron_csi", "neuron_bsi", "neuron_csi_final"))] if dyn else []
    if chapter == "supplement_schemes":
        return [*trend_claims("supp", "Fig. 23-25, 29", chapter, r("schemes"), acc_prune),
                *[sweep_claim(f"fig30.{f}", "Fig. 30 (left)", chapter, f, lambda ds, res: _switch(ds, res, r("constant")))
                  for f in r("switch")],
                *[sweep_claim(f"fig30.soups.{f}", "Fig. 30 (right)", chapter, f, lambda ds, res, f=f: _soups(ds, res, f))
                  for f in r("constant")]]
    return []


def record(results_dir: str | Path, chapter: str, roles: dict[str, list[str | Path]]) -> None:
    """Record which sweep folders (under ``results_dir``) ``chapter`` judges, by role (e.g.
    ``{"sweeps": ["fig4_colored_mnist_fcn", ...]}``; a params file stands for the folder named by
    its stem), so that its verdict table and the claims page judge the same sweeps whatever
    their names."""
    from lrsc.store import write_text

    folders = {role: [Path(f).stem for f in entries] for role, entries in roles.items()}
    write_text(json.dumps(folders, indent=1), Path(results_dir) / "chapters" / f"{chapter}.json")


def roles(results_dir: str | Path, chapter: str) -> dict[str, list[str]]:
    """The sweep folders ``chapter`` judges: what it recorded, else :data:`DEFAULT_ROLES`."""
    from lrsc.store import read_json

    return read_json(Path(results_dir) / "chapters" / f"{chapter}.json") or DEFAULT_ROLES.get(chapter, {})


def all_claims(results_dir: str | Path, chapter: str | None = None) -> list[Claim]:
    """Every claim of every chapter (or of ``chapter``), on the sweeps each judges under ``results_dir``."""
    return [claim for name in DEFAULT_ROLES if chapter in (None, name)
            for claim in _chapter_claims(name, roles(results_dir, name))]


def ledger(results_dir: str | Path, chapter: str | None = None) -> pd.DataFrame:
    """One row per judged statement of ``claims`` (those of ``chapter`` only, if given) whose results
    this build stored under ``results_dir``: ``figure``, ``chapter``, ``claim`` (the statement),
    ``on`` (the sweep it is judged on), ``verdict``, ``effect`` (the numbers behind it, with the
    interval and the seeds), and ``seeds``, ``compared``; indexed by the claim's id (with a
    number where one claim gives several rows)."""
    res = Results(results_dir)
    rows = []
    for claim in all_claims(results_dir, chapter):
        judged = claim.judge(res)
        for k, row in enumerate(judged):
            v = row.verdict
            rows.append({"id": claim.id if len(judged) == 1 else f"{claim.id}.{k + 1}", "figure": claim.figure,
                         "chapter": claim.chapter, "folder": claim.folder, "variable": claim.variable,
                         "claim": row.statement, "on": row.on, "verdict": v.verdict,
                         "effect": v.text(), "seeds": v.seeds, "compared": v.points, "side": v.side,
                         "value": v.effect, "low": v.low, "high": v.high,
                         "reason": v.reason if v.verdict == "untestable" else ""})
    columns = ["id", "figure", "chapter", "folder", "variable", "claim", "on", "verdict", "effect", "seeds", "compared",
               "side", "value", "low", "high", "reason"]
    return pd.DataFrame(rows, columns=columns).set_index("id")


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many rows of a :func:`ledger` table have each verdict (every verdict present, 0 if none)."""
    return {v: int((table.verdict == v).sum()) for v in verdicts.VERDICTS}


def markdown(table: pd.DataFrame, link: bool = False) -> str:
    """A ledger table as a Markdown table for a page: figure, claim, the results it is judged on, the
    verdict (bold where the data decide) and the numbers behind it; with ``link``, a column
    linking each claim's chapter."""
    shown = {"agrees": "**agrees**", "disagrees": "**disagrees**", "inconclusive": "inconclusive",
             "untestable": "*untestable*"}
    head = "| paper | claim | on | verdict | effect, 90% interval, seeds |" + (" shown in |" if link else "")
    lines = [head, "|---" * (6 if link else 5) + "|"]
    for _, r in table.iterrows():
        cells = [r.figure, r.claim, r.on, shown[r.verdict], r.effect.replace("|", "/")]
        if link:
            cells.append(f"{{doc}}`{r.chapter}`")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) if len(table) else "No claim of this page could be judged: its sweeps are not stored."


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`ledger` table on the headline claims: unbiased accuracy and prunability
    rise with the LR, in each main LR sweep (those of the Fig. 3 and Fig. 4 chapters)."""
    main = table.chapter.isin(("fig3_parity", "fig4_datasets")) & table.variable.isin(("test_acc", "prunability"))
    return table[main]


def headline_markdown(main: pd.DataFrame) -> str:
    """:func:`headline` rows as one Markdown table row per sweep: the two verdicts with their numbers."""
    lines = ["| sweep | unbiased accuracy rises with LR | prunability rises with LR |", "|---|---|---|"]
    for on, rows in main.groupby("on", sort=False):
        cells = []
        for var in ("test_acc", "prunability"):
            row = rows[rows.variable == var]
            cells.append(f"**{row.verdict.iloc[0]}**: {row.effect.iloc[0]}" if len(row) else "–")
        lines.append(f"| {on} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


VERDICT_WORDS = {"agrees": "as the paper claims", "disagrees": "against the paper's claim",
                 "inconclusive": "so this run cannot tell whether the paper's claim holds",
                 "untestable": "which this run cannot test"}


def says(table: pd.DataFrame, claim_id: str, trend: bool = True) -> str:
    """One clause for a page to glue about a judged claim: what the data show, the numbers, and
    the verdict, e.g. ``rises (+12.4 points, 90% CI +9.1 to +15.7; 3 seeds, 4 compared), as the
    paper claims``. For a claim that is not a trend (``trend=False``) the clause starts with
    the verdict itself (``agrees with the paper (...)``)."""
    if claim_id not in table.index:
        return "is not judged in this build (its sweep was not run)"
    row = table.loc[claim_id]
    if row.verdict == "untestable":
        return f"cannot be tested here ({row.effect})"
    if not trend:
        return {"agrees": "agrees with the paper", "disagrees": "disagrees with the paper",
                "inconclusive": "is inconclusive"}[row.verdict] + f" ({row.effect})"
    shows = {1: "rises", -1: "falls", 0: "shows no clear direction"}[int(row.side)]
    return f"{shows} ({row.effect}), {VERDICT_WORDS[row.verdict]}"


def chapter_table(results_dir: str | Path, chapter: str) -> tuple[pd.DataFrame, str]:
    """A chapter's own verdicts: its :func:`ledger` rows and their Markdown table."""
    table = ledger(results_dir, chapter=chapter)
    return table, markdown(table)


def says_each(table: pd.DataFrame, variable: str) -> str:
    """:func:`says` for every judged trend claim on ``variable`` in ``table``, each after its sweep's
    name, joined by semicolons (``"not judged in this build"`` when there is none)."""
    rows = table[table.variable == variable]
    return "; ".join(f"{row.on}: {says(table, claim_id)}" for claim_id, row in rows.iterrows()) or \
        "not judged in this build"
