"""Tables for readers: what each sweep ran, its values over seeds, ours beside the paper's, and the
claims ledger as pages show it.

Everything here reads stored results and their attributes (each variable's display scale and
header, the sweep's complete config) or a ledger of :mod:`lrsc.claims`, so a table needs
neither the code nor the registry entries that made the sweep. Verdicts come from
:mod:`lrsc.verdicts` only.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from lrsc import claims, judges, paper, settings, verdicts
from lrsc.results import config, dataset_model, look, scaled
from lrsc.verdicts import compared

SUMMARY = ("test_acc", "worst_group_acc", "prunability", "act_comp", "act_sparsity", "max_bc_loss_ratio")


def header(ds: xr.Dataset, var: str) -> str:
    return look(ds, var).header


def with_headers(table: pd.DataFrame, ds: xr.Dataset) -> pd.DataFrame:
    """``table`` with its top column level's variable names shown as their table headers
    (``test_acc`` -> ``acc. (%)``, ``lr`` -> ``LR``), read from ``ds``'s variable attributes."""
    names = {var: header(ds, var) for var in ds.data_vars}
    names["lr"] = "LR"
    return table.rename(columns=names, level=0 if table.columns.nlevels > 1 else None)


def summary_table(ds: xr.Dataset, variables: tuple[str, ...] = SUMMARY, dim: str = "lr") -> pd.DataFrame:
    """One row per value of ``dim``: the seed mean of each variable in its display units (the
    first with its seed standard deviation, ``± sd``), the mean steps, how many seeds met the
    stopping criterion (``conv.``) and diverged (``div.``), and whether the value is compared
    (every seed converged, none diverged). Works on any dataset with a ``dim`` dim; ``seed``,
    ``steps``, ``converged`` and ``diverged`` are optional."""
    if "seed" not in ds.dims:
        ds = ds.expand_dims(seed=[0])
    chosen, rows = set(compared(ds, dim)), {}
    for value in ds[dim].values:
        sel, row = ds.sel({dim: value}), {}
        for k, var in enumerate(v for v in variables if v in ds):
            digits = look(ds, var).digits
            values = scaled(sel, var)
            row[header(ds, var)] = round(float(values.mean()), digits)
            if k == 0 and sel.sizes["seed"] > 1:
                row["± sd"] = round(float(values.std(ddof=1)), digits)
        if "steps" in ds:
            row["steps"] = int(sel.steps.mean())
        if "converged" in ds:
            row["conv."] = f"{int(sel.converged.sum())}/{sel.sizes['seed']}"
            row["div."] = int(sel.diverged.sum())
        row["compared"] = "yes" if value in chosen else "no"
        rows[value.item() if hasattr(value, "item") else value] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(settings.label(dim))


def _shortest(value: object) -> object:
    # a column mixing 128 and 0.125 would otherwise print both with three decimals
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def settings_table(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per sweep (``{name: ds}``): the data, model, training-set size, rho, width, LRs,
    seeds and step cap it ran with, read from its stored config."""
    rows = {}
    for name, ds in results.items():
        cfg = config(ds)
        rows[name] = {"dataset": cfg["dataset"], "model": cfg["model"],
                      "n_train": cfg["dataset_params"].get("n_train") or "all",
                      "rho": _shortest(cfg["dataset_params"].get("rho", "")),
                      "width": _shortest(cfg["model_params"].get("width", "")),
                      "optimizer": cfg["train"]["optimizer"], "batch": cfg["train"]["batch_size"],
                      "LRs": ", ".join(f"{v:g}" for v in ds.lr.values) if "lr" in ds.dims else "",
                      "seeds": ds.sizes.get("seed", 1), "step cap": cfg["train"]["max_steps"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sweep")


def ranges_table(results: dict[str, xr.Dataset],
                 variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> pd.DataFrame:
    """Our min and max beside the paper's Tab. 1, one row per sweep (``{name: ds}``).

    Ours: the smallest and largest compared LR, and the min and max over the compared LRs of
    each variable's seed mean, each independently as in the paper; the paper's from
    :data:`lrsc.paper.TAB1` for the sweep's dataset and model (NaN where the paper has no
    such row). Accuracies in %. Columns ``(variable, "ours" | "paper", "min" | "max")``.
    """
    nan = (np.nan, np.nan)
    rows = {}
    for name, ds in results.items():
        lrs = compared(ds)
        theirs = paper.tab1(*dataset_model(ds)) or {}
        ours = {"lr": (lrs[0], lrs[-1]) if lrs else nan}
        for var in variables:
            mean = scaled(ds, var).mean("seed").sel(lr=lrs)
            ours[var] = (float(mean.min()), float(mean.max())) if lrs else nan
        rows[name] = {(var, source, end): value for var in ("lr", *variables)
                      for source, pair in (("ours", ours[var]), ("paper", theirs.get(var, nan)))
                      for end, value in zip(("min", "max"), pair)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["variable", "source", "end"])
    return table.rename_axis("sweep")


def ranges_text(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability", "act_comp")) -> str:
    """Our :func:`ranges_table` row of one sweep in the words of :func:`lrsc.paper.tab1_text`."""
    ours = ranges_table({"ours": ds}, variables).loc["ours"]
    parts = [f"{paper.TAB1_NAMES.get(v, v)} {paper.span(tuple(ours[v]['ours']), v == 'test_acc')}" for v in variables]
    return f"LRs {paper.span(tuple(ours['lr']['ours']))}: " + ", ".join(parts)


def compared_ends(ds: xr.Dataset, span: float | None = None) -> list[float]:
    """Two LRs of a sweep for a settings sweep to repeat it at: its largest compared LR and its
    smallest, or, with ``span``, the smallest compared LR at least ``1 / span`` of the largest (a
    cheaper pair, since small LRs take many steps). With fewer than two compared LRs, the same
    over the LRs at which no seed diverged, else the grid's ends."""
    for values in (compared(ds), [v for v in ds.lr.values.tolist() if not bool(ds.diverged.sel(lr=v).any())],
                   ds.lr.values.tolist()):
        if len(values) >= 2:
            return ends_among(values, span)
    return sorted(ds.lr.values.tolist())


def ends_among(values: list[float], span: float | None = None) -> list[float]:
    """The pair of :func:`compared_ends` among ``values`` (two LRs or more): the largest, and the
    smallest, or with ``span`` the smallest at least ``1 / span`` of the largest (another one when
    that is the largest itself)."""
    values = sorted(values)
    low = next(v for v in values if span is None or v >= values[-1] / span * (1 - 1e-9))
    return [low if low < values[-1] else values[-2], values[-1]]


def longer_training(constant: xr.Dataset, longer: xr.Dataset) -> str:
    """What training past the stopping criterion changed, in words: unbiased accuracy at the smallest
    and the largest LR both sweeps compared, and the gap between them, without and with the extra steps."""
    lrs = sorted(set(compared(constant)) & set(compared(longer)))
    if len(lrs) < 2:
        return "the two sweeps share fewer than two compared LRs"
    a, b = (scaled(d, "test_acc").sel(lr=[lrs[0], lrs[-1]]).mean("seed").values for d in (constant, longer))
    return (f"at LR {lrs[0]:g}, unbiased accuracy is {a[0]:.1f}% at the criterion and {b[0]:.1f}% after the extra "
            f"steps; at LR {lrs[-1]:g}, {a[1]:.1f}% and {b[1]:.1f}%; so the LR's gap goes from {a[1] - a[0]:+.1f} to "
            f"{b[1] - b[0]:+.1f} points (seed means; the paper reports that accuracy changes very little beyond "
            f"convergence).")


def trend_table(results: dict[str, xr.Dataset], checks: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """One row per sweep (``{name: ds}``) and one column per ``{label: (variable, expected)}``: the
    verdict of :func:`lrsc.verdicts.trend` with its numbers, e.g. ``rises: +3.1 points (90% CI
    ...)``; for variables a chapter shows beside its claims (controls the paper does not claim)."""
    rows = {}
    for name, ds in results.items():
        rows[name] = {}
        for label, (var, expected) in checks.items():
            v = verdicts.trend(ds, var, expected)
            rows[name][label] = f"{v.direction}: {v.text()}" if v.verdict != "untestable" else f"untestable: {v.text()}"
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("sweep")


def above_one(ds: xr.Dataset) -> tuple[int, int]:
    """How many runs have a pruned model more accurate than the unpruned one at some pruning
    fraction (``P_q > 1``), out of the runs with a pruning curve."""
    curve = ds.prune_curve
    has = curve.notnull().any("prune_fraction")
    return int(((curve > 1).any("prune_fraction") & has).sum()), int(has.sum())


def settings_frame(ds: xr.Dataset, variables: tuple[str, ...] = ("test_acc", "prunability")) -> pd.DataFrame:
    """:func:`lrsc.judges.settings_verdicts` of each of ``variables`` as a table: one row per setting (indexed by
    the settings' values), columns ``(variable, "effect" | "verdict")`` and ``converged`` (every
    run of the setting converged)."""
    dims = [d for d in ds["test_acc"].dims if d not in ("lr", "seed")]
    stacked = ds[["converged"]].stack(cell=dims) if dims else ds[["converged"]].expand_dims(cell=[0])
    cells = [stacked.isel(cell=i) for i in range(stacked.sizes["cell"])]
    keys = [tuple(c[d].item() for d in dims) for c in cells]
    index = pd.MultiIndex.from_tuples(keys, names=dims) if len(dims) > 1 else \
        pd.Index([k[0] if k else 0 for k in keys], name=dims[0] if dims else " ")
    columns = {}
    for var in variables:
        judged = [v for _, v in judges.settings_verdicts(ds, var)]
        columns[(var, "effect")] = [v.effect for v in judged]
        columns[(var, "verdict")] = [v.verdict for v in judged]
    columns[("converged", "")] = [bool(c.converged.all()) for c in cells]
    table = pd.DataFrame(columns, index=index)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


# ----- the claims ledger for readers -----

SHOWN = {"agrees": "**agrees**", "disagrees": "**disagrees**", "no effect": "**no effect**",
         "inconclusive": "inconclusive", "untestable": "*untestable*"}
WORDS = {"agrees": "as the paper claims", "disagrees": "against the paper's claim",
         "no effect": "so the claimed effect is absent here",
         "inconclusive": "so this run cannot tell whether the paper's claim holds",
         "untestable": "which this run cannot test"}


OWN_WORDS = {"agrees": "as the statement says", "disagrees": "against the statement",
             "no effect": "so the stated effect is absent here",
             "inconclusive": "so this run cannot tell whether the statement holds",
             "untestable": "which this run cannot test"}


def _cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def ledger_markdown(table: pd.DataFrame, link: bool = False, q: bool = False) -> str:
    """A ledger table (:func:`lrsc.claims.ledger`) as a Markdown table for a page: figure, claim, the
    sweep and setting it is judged on, the verdict (bold where the data decide) and the numbers
    behind it; with ``q`` the Benjamini-Hochberg q-value (:func:`lrsc.claims.with_q`), with ``link``
    the chapter that shows it."""
    if not len(table):
        return "No claim of this page could be judged: its sweeps are not stored."
    head = ["paper", "claim", "on", "verdict", "effect, 90% interval, seeds", *(["q"] if q else []),
            *(["shown in"] if link else [])]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for _, r in table.iterrows():
        on = f"{r.on} ({r.setting})" if r.setting else r.on
        cells = [r.figure, r.statement, on, SHOWN[r.verdict], r.text]
        if q:
            cells.append(f"{r.q:.2g}" if np.isfinite(r.q) else "–")
        if link:
            cells.append(f"{{doc}}`{r.chapter}`" if r.folder else "not in this build")  # a left-out chapter
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def says(table: pd.DataFrame, claim_id: str, folder: str | None = None, trend: bool = True) -> str:
    """One clause for a page to glue about declared claim ``claim_id`` (on ``folder`` where its role
    has several sweeps): what the data show, the numbers, and the verdict, e.g. ``rises (+12.4
    points, 90% CI +9.1 to +15.7, 3 seeds), as the paper claims``. For a claim that is not a trend
    (``trend=False``) the clause starts with the verdict itself. A claim the build did not judge
    says so; an unknown claim raises ConfigError."""
    try:
        r = claims.row(table, claim_id, folder)
    except KeyError:
        return "is not judged in this build (its sweep was not run)"
    if r.verdict == "untestable":
        return f"cannot be tested here ({r.text})"
    own = r.source == "book"  # a claim of the book's own is a question the book asks, not the paper's word
    if not trend:
        return ({"agrees": "holds", "disagrees": "is contradicted", "no effect": "finds no effect",
                 "inconclusive": "is inconclusive"} if own else
                {"agrees": "agrees with the paper", "disagrees": "disagrees with the paper",
                 "no effect": "finds no effect (the paper's claim does not hold here)",
                 "inconclusive": "is inconclusive"})[r.verdict] + f" ({r.text})"
    shows = "does not move" if r.verdict == "no effect" else {1: "rises", -1: "falls", 0: "shows no clear direction"}[
        int(r.side)]
    return f"{shows} ({r.text}), {(OWN_WORDS if own else WORDS)[r.verdict]}"


def answer(counts: dict[str, int]) -> str:
    """One line for a group of verdicts, e.g. ``holds in 4 of the 9 verdicts, against it in 1, absent
    in 2, cannot tell in 1, untestable in 1``."""
    n = sum(counts.values())
    if not n:
        return "not judged in this build"
    parts = [f"holds in {counts['agrees']} of the {n} verdicts"]
    for kind, words in (("disagrees", "against it in"), ("no effect", "absent in"), ("inconclusive", "cannot tell in"),
                        ("untestable", "untestable in")):
        if counts[kind]:
            parts.append(f"{words} {counts[kind]}")
    return ", ".join(parts)


REASONS = {"fewer than": "too few seeds or compared LRs", "does not learn": "a setting that does not learn its task",
           "undefined": "a variable undefined for these runs", "ceiling": "a variable pinned at its ceiling",
           "floor": "a variable pinned at its floor", "do not clearly differ": "a soup whose members do not differ",
           "snapshots": "no snapshots recorded", "none of the pooled": "no pooled sweep learns its task",
           "no variation": "no variation within the sweeps"}


def reason_kind(reason: str) -> str:
    """The kind of an untestable verdict's reason, in a few words (for counts on a page)."""
    return next((words for key, words in REASONS.items() if key in reason), "other")


def contributions(table: pd.DataFrame) -> pd.DataFrame:
    """Per contribution of the paper (Sec. 1): its words, the verdicts that bear on it by kind, and
    :func:`answer`; indexed by the contribution's number."""
    rows = {}
    for k, words in paper.CONTRIBUTIONS.items():
        n = claims.counts(table[table.contribution == k])
        rows[k] = {"contribution": words, **n, "answer": answer(n)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("")


def contributions_markdown(table: pd.DataFrame) -> str:
    """:func:`contributions` as a Markdown list: each contribution in the paper's words and its answer."""
    return "\n".join(f"{k}. *{r.contribution}*: {r.answer}." for k, r in contributions(table).iterrows())


def headline_markdown(table: pd.DataFrame) -> str:
    """The headline rows of a ledger (:data:`lrsc.claims.HEADLINE`) as one Markdown row per main LR
    sweep: unbiased accuracy, prunability, and both together, each with its verdict and numbers."""
    main = table[table.claim.isin(claims.HEADLINE)]
    lines = ["| sweep | unbiased accuracy rises with LR | prunability rises with LR | both rise |", "|---|---|---|---|"]
    for folder, rows in main.groupby("folder", sort=False):
        cells = []
        for suffix in (".acc", ".prune", ".both"):
            row = rows[rows.claim.str.endswith(suffix)]
            text = "" if suffix == ".both" else f": {_cell(row.text.iloc[0])}" if len(row) else ""  # both: its parts' numbers are beside it
            cells.append(f"{SHOWN[row.verdict.iloc[0]]}{text}" if len(row) else "–")
        lines.append(f"| {rows.on.iloc[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----- what an LR sweep ran -----

def _unstable_because(ds: xr.Dataset, lr: float, loss: float) -> str:
    """Why the LR ``lr`` of an edge-protocol sweep counts as unstable, in words."""
    at = ds.sel(lr=lr)
    n, div = at.sizes.get("seed", 1), int(at.diverged.sum())
    if div:
        return f"{div} of {n} seeds diverged"
    return f"some seed lost more than {loss:.0%} of the best above-chance accuracy"


def lr_protocol(ds: xr.Dataset) -> str:
    """One sentence on the LRs an LR sweep ran and why: its span, the paper's beside it (Tab. 1, where
    it has the row), the edge of stability and what happened above it, the step cap rule and the seeds."""
    cfg = config(ds)
    lrs = sorted(float(v) for v in ds.lr.values)
    used = compared(ds)
    seeds = ds.sizes.get("seed", 1)
    span = f"{used[0]:g} to {used[-1]:g} ({used[-1] / used[0]:.3g}× span)" if len(used) > 1 else \
        f"{', '.join(f'{v:g}' for v in lrs)} (fewer than two compared)"
    theirs = paper.tab1(*dataset_model(ds))
    out = [f"Compared LRs {span}"]
    if theirs:
        lo, hi = theirs["lr"]
        out[0] += f"; the paper's Tab. 1 row spans {lo:g} to {hi:g} ({hi / lo:.3g}×)"
    edge = cfg.get("edge")
    if edge:
        spec = edge["spec"]
        found = f"probed from LR {spec['start']:g} by factors of {spec['factor']:.3g} up to the edge of stability, " \
                f"LR {edge['edge']:g}"
        if edge["unstable"] is not None and edge["unstable"] in lrs:
            found += f"; at LR {edge['unstable']:g}, {_unstable_because(ds, edge['unstable'], spec['loss'])} " \
                     f"(shown, not compared)"
        else:
            found += f"; no unstable LR was found within {spec['probes']} probes, so the sweep may stop short of the edge"
        out.append(found)
    else:
        div = [v for v in lrs if bool(ds.diverged.sel(lr=v).any())]
        out.append(f"a fixed grid; {'some seed diverged at LR ' + ', '.join(f'{v:g}' for v in div) if div else 'no LR diverged, so the grid may stop short of the edge of stability'}")
    train = cfg["train"]
    cap = f"step cap {train['max_steps']}"
    if train.get("cap_lr"):
        low = min(lrs)
        grown = math.ceil(round(train["max_steps"] * train["cap_lr"] / low, 6)) if low < train["cap_lr"] else \
            train["max_steps"]
        cap += f" at LR {train['cap_lr']:g} and above, growing as 1/LR below it ({grown} at LR {low:g})"
    unconverged = [v for v in lrs if v not in used and not bool(ds.diverged.sel(lr=v).any())]
    if unconverged:
        cap += f"; at LR {', '.join(f'{v:g}' for v in unconverged)} some seed hit it (shown, not compared)"
    out.append(cap)
    out.append(f"{seeds} seeds")
    return "; ".join(out) + "."
