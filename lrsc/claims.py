"""The claims the book tests, declared once as data, and the ledger of their verdicts.

:data:`CLAIMS` is one table: each :class:`Claim` names its handle (``id``), the paper's
contribution it bears on (Sec. 1, :data:`lrsc.paper.CONTRIBUTIONS`), the figure, the chapter
that shows it, the *role* of that chapter's sweeps it is judged on, the judge
(:data:`lrsc.judges.JUDGES`), the variable and the claimed direction. Adding a claim is one
entry here and its use on the chapter's page. A chapter records which sweep folders fill each
of its roles when it runs (:func:`record`); :func:`ledger` then judges every claim on what is
stored, one row per statement, so a chapter's table and the claims page are the same rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lrsc import judges, verdicts
from lrsc.errors import ConfigError
from lrsc.judges import Results
from lrsc.store import read_json, write_text


@dataclass(frozen=True)
class Claim:
    """One declared claim: see the module docstring. ``source`` is ``paper`` for the paper's claims
    and ``book`` for claims this book adds (controls and extensions)."""

    id: str
    contribution: int
    figure: str
    chapter: str
    role: str
    judge: str
    variable: str = ""
    expected: int = 1
    source: str = "paper"

    def __post_init__(self) -> None:
        if self.judge not in judges.JUDGES:
            raise ValueError(f"claim {self.id}: unknown judge {self.judge!r}; judges: {', '.join(judges.JUDGES)}")


def _c(id: str, contribution: int, figure: str, chapter: str, role: str, judge: str, variable: str = "",
       expected: int = 1) -> Claim:
    return Claim(id, contribution, figure, chapter, role, judge, variable, expected)


F3, F4, F5, F6, F7, F8 = ("fig3_parity", "fig4_datasets", "fig5_representations", "fig6_hyperparameters",
                          "fig7_naturalistic", "fig8_10_11_standard")
F12, SUPP = "fig12_13_mechanism", "supplement_schemes"
BASE, BEYOND = "baselines", "Beyond the paper"


def _own(id: str, role: str, judge: str, variable: str, expected: int = 1) -> Claim:
    """A claim of the book's own, beyond the paper (contribution 0: none of the paper's five)."""
    return Claim(id, 0, BEYOND, BASE, role, judge, variable, expected, source="book")


CLAIMS: tuple[Claim, ...] = (
    _c("fig3.acc", 1, "Fig. 3", F3, "parity", "trend", "test_acc"),
    _c("fig3.prune", 1, "Fig. 3", F3, "parity", "trend", "prunability"),
    _c("fig3.both", 1, "Fig. 3", F3, "parity", "both"),
    _c("fig3.comp", 2, "Fig. 3", F3, "parity", "trend", "act_comp"),
    _c("fig3.core", 2, "Fig. 3", F3, "parity", "trend", "attr_core"),
    _c("fig3.spurious", 2, "Fig. 3", F3, "parity", "trend", "attr_spurious", -1),
    _c("fig3.settings.acc", 1, "Fig. 3", F3, "settings", "settings", "test_acc"),
    _c("fig3.settings.prune", 1, "Fig. 3", F3, "settings", "settings", "prunability"),
    _c("fig15.acc", 1, "Fig. 15", F3, "moon_star", "trend", "test_acc"),
    _c("fig15.prune", 1, "Fig. 15", F3, "moon_star", "trend", "prunability"),
    _c("fig15.both", 1, "Fig. 15", F3, "moon_star", "both"),
    _c("fig15.comp", 2, "Fig. 15", F3, "moon_star", "trend", "act_comp"),
    _c("fig4.acc", 1, "Fig. 4, 16", F4, "sweeps", "trend", "test_acc"),
    _c("fig4.prune", 1, "Fig. 4, 16", F4, "sweeps", "trend", "prunability"),
    _c("fig4.both", 1, "Fig. 4, 16", F4, "sweeps", "both"),
    _c("fig4.comp", 2, "Fig. 4, 16", F4, "sweeps", "trend", "act_comp"),
    _c("fig4.settings.acc", 1, "Fig. 4", F4, "settings", "settings", "test_acc"),
    _c("fig4.settings.prune", 1, "Fig. 4", F4, "settings", "settings", "prunability"),
    _c("fig5.csi", 2, "Fig. 5", F5, "sweeps", "trend", "csi"),
    _c("fig5.class_sep", 2, "Fig. 5", F5, "sweeps", "trend", "class_sep"),
    _c("fig6.lr", 3, "Fig. 6, Tab. 2", F6, "lr", "both"),
    _c("fig6.others", 3, "Fig. 6, Tab. 2", F6, "hp", "not_both"),
    _c("fig6.l2.acc", 3, "Fig. 6, Tab. 2", F6, "high_lr_l2", "l2_adds", "test_acc"),
    _c("fig6.l2.prune", 3, "Fig. 6, Tab. 2", F6, "high_lr_l2", "l2_adds", "prunability"),
    _c("fig7.wga", 1, "Fig. 7, 19", F7, "sweeps", "trend", "worst_group_acc"),
    _c("fig7.prune", 1, "Fig. 7, 19", F7, "sweeps", "trend", "prunability"),
    _c("fig7.csi", 2, "Fig. 7, 19", F7, "sweeps", "trend", "csi"),
    _c("fig8.acc", 4, "Fig. 10, 11", F8, "sweeps", "trend", "test_acc"),
    _c("fig8.entropy", 4, "Fig. 10, 11", F8, "sweeps", "trend", "attr_entropy", -1),
    _c("fig8.bg", 4, "Fig. 10, 11", F8, "sweeps", "trend", "bg_share", -1),
    _c("fig14.entropy", 4, "Fig. 14", F8, "sweeps", "deeplift", "attr_entropy", -1),
    _c("fig14.bg", 4, "Fig. 14", F8, "sweeps", "deeplift", "bg_share", -1),
    _c("fig12", 5, "Fig. 12", F12, "sweeps", "correlation", "max_bc_loss_ratio"),
    _c("fig13.logit", 5, "Fig. 13", F12, "dynamics", "dynamics", "logit_norm"),
    _c("fig13.param", 5, "Fig. 13", F12, "dynamics", "dynamics", "param_norm"),
    _c("fig13.confident", 5, "Fig. 13", F12, "dynamics", "dynamics", "confident_bc"),
    _c("prop1", 5, "Prop. 1", F12, "dynamics", "scaling", "bc_loss_share"),
    _c("prop2", 5, "Prop. 2", F12, "dynamics", "scaling", "spurious_grad_share"),
    _c("fig18", 5, "Fig. 18", F12, "dynamics", "persistence"),
    _c("supp.acc", 1, "Fig. 23-25, 29", SUPP, "schemes", "trend", "test_acc"),
    _c("supp.prune", 1, "Fig. 23-25, 29", SUPP, "schemes", "trend", "prunability"),
    _c("fig30.switch", 1, "Fig. 30 (left)", SUPP, "switch", "switch"),
    _c("fig30.soups", 3, "Fig. 30 (right)", SUPP, "constant", "soups"),
    _own("base.default.acc", "methods", "erm_vs_default", "test_acc"),
    _own("base.default.wga", "methods", "erm_vs_default", "worst_group_acc"),
    _own("base.default.prune", "methods", "erm_vs_default", "prunability"),
    _own("base.selected.acc", "methods", "erm_vs_selected", "test_acc"),
    _own("base.selected.wga", "methods", "erm_vs_selected", "worst_group_acc"),
    _own("base.selected.prune", "methods", "erm_vs_selected", "prunability"),
    _own("base.lr.acc", "methods", "trend", "test_acc"),
    _own("base.lr.wga", "methods", "trend", "worst_group_acc"),
    _own("base.interaction.acc", "methods", "lr_interaction", "test_acc", 0),
    _own("base.dfr", "erm", "trend", "dfr_gain"),
)
BY_ID = {c.id: c for c in CLAIMS}
assert len(BY_ID) == len(CLAIMS), "every claim has its own id"
# The headline claims: unbiased accuracy and prunability rise with the LR, and both together, in each main LR sweep.
HEADLINE = ("fig3.acc", "fig3.prune", "fig3.both", "fig15.acc", "fig15.prune", "fig15.both",
            "fig4.acc", "fig4.prune", "fig4.both")


def get(claim_id: str) -> Claim:
    """The declared claim ``claim_id``; raises ConfigError naming the valid ids for an unknown one."""
    if claim_id not in BY_ID:
        raise ConfigError(f"no claim {claim_id!r}; claims: {', '.join(BY_ID)}")
    return BY_ID[claim_id]


def chapter_claims(chapter: str) -> list[Claim]:
    """The claims ``chapter`` shows, in table order."""
    return [c for c in CLAIMS if c.chapter == chapter]


def record(results_dir: str | Path, chapter: str, roles: dict[str, list[str]]) -> None:
    """Record which sweep folders (under ``results_dir``) fill each role of ``chapter``, merged with
    what it recorded before (a role given here is replaced), so that its claims are judged on them."""
    path = Path(results_dir) / "chapters" / f"{chapter}.json"
    known = {c.role for c in chapter_claims(chapter)}
    unknown = set(roles) - known - {"constant"}
    if unknown:
        raise ConfigError(f"chapter {chapter} has no role {sorted(unknown)[0]!r}; its roles: {', '.join(sorted(known))}")
    before = {role: folders for role, folders in (read_json(path) or {}).items() if role != LEFT_OUT}
    write_text(json.dumps({**before, **roles}, indent=1), path)


LEFT_OUT = "left out"  # the key of a chapter's record that says why this build runs none of its sweeps


def leave_out(results_dir: str | Path, chapter: str, reason: str) -> None:
    """Record that this build leaves ``chapter`` out, for ``reason``: its claims are untestable with
    that reason, and whatever it recorded before (from another build) is no longer judged."""
    write_text(json.dumps({LEFT_OUT: reason}, indent=1), Path(results_dir) / "chapters" / f"{chapter}.json")


def left_out(results_dir: str | Path, chapter: str) -> str:
    """Why this build leaves ``chapter`` out (:func:`leave_out`); "" for a chapter it runs."""
    return (read_json(Path(results_dir) / "chapters" / f"{chapter}.json") or {}).get(LEFT_OUT, "")


def roles(results_dir: str | Path, chapter: str) -> dict[str, list[str]]:
    """The sweep folders of each role ``chapter`` recorded (``{}`` before it has run, or when left out)."""
    recorded = read_json(Path(results_dir) / "chapters" / f"{chapter}.json") or {}
    return {role: folders for role, folders in recorded.items() if role != LEFT_OUT}


COLUMNS = ["claim", "contribution", "figure", "chapter", "source", "folder", "on", "setting", "statement",
           "variable", "claimed", "verdict", "effect", "low", "high", "units", "sesoi", "seeds", "compared", "p",
           "needed", "reason", "text", "side"]


def ledger(results_dir: str | Path, chapter: str | None = None) -> pd.DataFrame:
    """One row per judged statement of the declared claims (of ``chapter`` only, if given) on the
    sweeps stored under ``results_dir``, indexed by ``id`` (``<claim>/<folder>``, with ``#k`` where a
    claim gives several statements on one sweep). Columns :data:`COLUMNS`: the claim's
    declaration, ``on`` (the sweep's title) and ``setting``, the ``verdict`` with its ``effect``,
    ``low`` / ``high`` interval, ``units``, the smallest effect of interest ``sesoi``, ``seeds``, ``compared`` points, two-sided ``p``, the seeds
    ``needed`` to decide an inconclusive one, the ``reason`` of an untestable one, and ``text``
    (the numbers in one line). A claim whose sweeps this build did not store gives no row; one whose
    chapter it leaves out (:func:`leave_out`) gives one, untestable, on no folder."""
    res = Results(results_dir)
    rows = []
    for claim in CLAIMS if chapter is None else chapter_claims(chapter):
        reason = left_out(results_dir, claim.chapter)
        judged = (judges.left_out(claim, reason) if reason else
                  judges.JUDGES[claim.judge](claim, res, roles(results_dir, claim.chapter)))
        counts: dict[str, int] = {}
        for row in judged:
            counts[row.folder] = counts.get(row.folder, 0) + 1
        seen: dict[str, int] = {}
        for row in judged:
            v, folder = row.verdict, row.folder
            seen[folder] = seen.get(folder, 0) + 1
            rows.append({"id": f"{claim.id}/{folder}" + (f"#{seen[folder]}" if counts[folder] > 1 else ""),
                         "claim": claim.id, "contribution": claim.contribution, "figure": claim.figure,
                         "chapter": claim.chapter, "source": claim.source, "folder": folder, "on": row.on,
                         "setting": row.setting, "statement": row.statement, "variable": claim.variable,
                         "claimed": {1: "rises", -1: "falls", 0: "changes"}[claim.expected], "verdict": v.verdict,
                         "effect": v.effect, "low": v.low, "high": v.high, "units": v.units,
                         "sesoi": np.nan if v.sesoi is None else v.sesoi, "seeds": v.seeds,
                         "compared": v.points, "p": v.p, "needed": v.needed if v.needed is not None else np.nan,
                         "reason": v.reason if v.verdict == "untestable" else "", "text": v.text(), "side": v.side})
    return pd.DataFrame(rows, columns=["id", *COLUMNS]).set_index("id")


def with_q(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a whole :func:`ledger`) with ``q``, the Benjamini-Hochberg q-value of each verdict's
    ``p`` over every verdict that has one, and ``survives``: a decisive verdict whose q is at most
    :data:`lrsc.verdicts.FDR`."""
    out = table.copy()
    out["q"] = verdicts.q_values(out.p.to_numpy(dtype=float))
    out["survives"] = out.verdict.isin(verdicts.DECISIVE) & (out.q <= verdicts.FDR)
    return out


def counts(table: pd.DataFrame) -> dict[str, int]:
    """How many rows of a :func:`ledger` table have each verdict (every kind present, 0 if none)."""
    return {v: int((table.verdict == v).sum()) for v in verdicts.KINDS}


def chance_decisions(table: pd.DataFrame) -> float:
    """How many decisive verdicts the level alone would give among ``table``'s tested rows (those
    with a p-value) if no effect were real: ``1 - LEVEL`` of them."""
    return (1 - verdicts.LEVEL) * int(table.p.notnull().sum())


def row(table: pd.DataFrame, claim_id: str, folder: str | None = None) -> pd.Series:
    """The one ledger row of declared claim ``claim_id`` (on ``folder``, where its role has several
    sweeps). Raises ConfigError for an unknown claim, and KeyError when the build has no such row."""
    get(claim_id)
    rows = table[(table.claim == claim_id) & ((table.folder == folder) if folder else True)]
    if len(rows) != 1:
        where = f" on {folder}" if folder else ""
        raise KeyError(f"claim {claim_id}{where} has {len(rows)} rows in this ledger (folders: "
                       f"{', '.join(sorted(set(table[table.claim == claim_id].folder))) or 'none'})")
    return rows.iloc[0]


CSV_COLUMNS = ["contribution", "figure", "chapter", "on", "setting", "statement", "variable", "claimed", "verdict",
               "effect", "low", "high", "units", "sesoi", "seeds", "p", "q", "needed", "reason", "source"]


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a ledger with q-values (:func:`with_q`) as a CSV a reader can take away: one row per
    verdict, by id, with :data:`CSV_COLUMNS`; returns the path."""
    path = Path(path)
    write_text(table[CSV_COLUMNS].rename(columns={"needed": "seeds needed"}).to_csv(), path)
    return path
