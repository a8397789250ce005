"""How each kind of claim is judged on stored results: the judges the claims table names.

A judge takes one declared claim (:class:`lrsc.claims.Claim`, which names the judge, the
variable and the claimed direction), the stored :class:`Results` of a results folder and the
sweep folders of each role of the claim's chapter, and gives one :class:`Judged` per
statement: the statement, the data setting it is about (for readers), and its
:class:`~lrsc.verdicts.Verdict` from the one rule of :mod:`lrsc.verdicts`. Every judge first
asks whether the sweep it judges learns its task (:func:`lrsc.verdicts.learns`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol

import xarray as xr

from lrsc import baselines, mechanism, settings, soup, sweepdir, variables, verdicts
from lrsc.collect import read_results
from lrsc.results import config, look, title
from lrsc.verdicts import Verdict, compared



class Claim(Protocol):
    """What a judge reads of a declared claim (:class:`lrsc.claims.Claim`, which sits above the
    judges: the claims table names its judge)."""

    role: str
    variable: str
    expected: str


@dataclass(frozen=True)
class Judged:
    """One judged statement: ``on`` names the sweep (its title), ``setting`` the data setting within
    it where a claim gives one statement per setting, and ``folder`` the sweep's folder (a pooled
    claim: the role it pools)."""

    statement: str
    on: str
    verdict: Verdict
    setting: str = ""
    folder: str = ""


class Results:
    """The stored results under ``results_dir``, each read once."""

    def __init__(self, results_dir: str | Path):
        self.root = Path(results_dir)

    @lru_cache(maxsize=None)
    def sweep(self, folder: str) -> xr.Dataset | None:
        """The collected sweep of ``folder`` (its ``results.nc``), or None when none is stored."""
        path = self.root / folder / "results.nc"
        return read_results(path) if path.is_file() else None

    @lru_cache(maxsize=None)
    def derived(self, folder: str, name: str) -> xr.Dataset | None:
        """What a chapter derived from the sweep of ``folder`` and stored as ``name``, or None."""
        return sweepdir.load_derived(self.root / folder, name)


Roles = dict[str, list[str]]  # the sweep folders of each role of a chapter
Judge = Callable[[Claim, Results, Roles], list[Judged]]
JUDGES: dict[str, Judge] = {}


@dataclass(frozen=True)
class Sweep:
    """One stored sweep being judged: its ``folder``, its collected dataset ``ds``, the folder's
    :class:`Results` and the roles of its chapter (for judges that compare with another role)."""

    folder: str
    ds: xr.Dataset
    res: Results
    roles: Roles


SweepJudge = Callable[[Claim, Sweep], list[tuple[str, str, Verdict]]]


def sentence(phrase: str) -> str:
    """``phrase`` with its first letter capitalised (and the rest as it is: "CSI" stays "CSI")."""
    return phrase[:1].upper() + phrase[1:]


def moves(expected: int) -> str:
    return {1: "rises", -1: "falls", 0: "changes"}[expected]


def phrase(var: str) -> str:
    return variables.get(var).phrase if var in variables.REGISTRY else var


def per_sweep(name: str, needs: tuple[str, ...] = ()) -> Callable[[SweepJudge], SweepJudge]:
    """Register a judge of each stored sweep of the claim's role in turn:
    ``fn(claim, sweep)`` gives ``(setting, statement, verdict)`` per statement; sweeps that lack a variable the judge
    ``needs`` (or the claim's variable) give none, and a sweep that does not learn its task makes
    every verdict untestable."""

    def register(fn: SweepJudge) -> SweepJudge:
        def judge(claim: Claim, res: Results, roles: Roles) -> list[Judged]:
            out = []
            for folder in roles.get(claim.role, []):
                ds = res.sweep(folder)
                wanted = (*needs, *([claim.variable] if claim.variable else []))
                if ds is None or any(v not in ds for v in wanted):
                    continue
                fails = verdicts.learns(ds)
                for setting, statement, verdict in fn(claim, Sweep(folder, ds, res, roles)):
                    if fails and verdict.verdict != "untestable":
                        verdict = verdicts.with_reason(verdict, fails)
                    out.append(Judged(statement, title(ds), verdict, setting, folder))
            return out

        JUDGES[name] = judge
        return fn

    return register


def left_out(claim: Claim, reason: str) -> list[Judged]:
    """The one row of a claim whose chapter this build leaves out (its profile runs none of its
    sweeps, for ``reason``): untestable, judged on no sweep."""
    statement = (f"{sentence(phrase(claim.variable))} {moves(claim.expected)} with the learning rate."
                 if claim.variable else f"{claim.figure} as the paper shows it.")
    return [Judged(statement, "no sweep in this profile",
                   Verdict("untestable", reason=f"this profile leaves the chapter out: {reason}"))]


@per_sweep("trend")
def _trend(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """The claim's variable moves with the LR the claimed way."""
    ds = sweep.ds
    statement = f"{sentence(phrase(claim.variable))} {moves(claim.expected)} with the learning rate."
    return [("", statement, verdicts.trend(ds, claim.variable, claim.expected))]


def both_verdict(ds: xr.Dataset, key: str = "lr", expected: int = 1) -> Verdict:
    """Unbiased accuracy and prunability both rise along ``key`` (moved the way it acts like a larger
    LR), or, with ``expected`` -1, not both."""
    sign = settings.TRAIN[key].like_lr or 1
    parts = {phrase(v): verdicts.trend(ds, v, 1, dim=key, sign=sign) for v in ("test_acc", "prunability")}
    return verdicts.both(parts, expected)


@per_sweep("both", needs=("test_acc", "prunability"))
def _both(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Over its range, the LR raises unbiased accuracy and prunability together."""
    ds = sweep.ds
    return [("", "Unbiased test accuracy and prunability both rise with the learning rate.", both_verdict(ds))]


@per_sweep("not_both", needs=("test_acc", "prunability"))
def _not_both(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Another hyperparameter, swept at one small LR, does not raise both (the sweep's axis besides
    ``lr`` and ``seed``, moved the way it acts like a larger LR)."""
    ds = sweep.ds
    key = next(d for d in ds.test_acc.dims if d not in ("lr", "seed"))
    ds = ds.isel(lr=0)
    statement = (f"Over its range at LR {float(ds.lr):g}, {settings.TRAIN[key].name} does not raise both unbiased "
                 f"accuracy and prunability.")
    return [("", statement, both_verdict(ds, key, expected=-1))]


def settings_verdicts(ds: xr.Dataset, var: str = "test_acc") -> list[tuple[str, Verdict]]:
    """Per data setting of a settings sweep (dims ``(*settings, lr, seed)``): the paired verdict
    that ``var`` is higher at the largest LR than at the smallest, labelled by its setting
    (``"rho 0.02, n_core 5"``), in grid order; a setting that does not learn its task is untestable."""
    dims = [d for d in ds[var].dims if d not in ("lr", "seed")]
    sub = ds[[v for v in dict.fromkeys((var, "test_acc", "chance_acc", "converged", "diverged")) if v in ds]]
    stacked = sub.stack(cell=dims) if dims else sub.expand_dims(cell=[0])
    out = []
    for i in range(stacked.sizes["cell"]):
        cell = stacked.isel(cell=i)
        low, high = cell[var].sel(lr=cell.lr.min()), cell[var].sel(lr=cell.lr.max())
        label = ", ".join(f"{d} {cell[d].item():g}" for d in dims)
        verdict = verdicts.contrast(low.values, high.values, 1, look=look(ds, var))
        fails = verdicts.learns(cell.drop_vars(["cell", *dims], errors="ignore"))
        out.append((label, verdicts.with_reason(verdict, fails) if fails and verdict.verdict != "untestable"
                    else verdict))
    return out


@per_sweep("settings")
def _settings(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Per data setting: the variable is higher at the settings sweep's largest LR than at its smallest."""
    ds = sweep.ds
    lo, hi = float(ds.lr.min()), float(ds.lr.max())
    return [(setting, f"{sentence(phrase(claim.variable))} is higher at LR {hi:g} than at LR {lo:g} ({setting}).",
             verdict) for setting, verdict in settings_verdicts(ds, claim.variable)]


@per_sweep("l2_adds")
def _l2_adds(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Fig. 6: L2 adds to a large LR: at the large LR, a larger L2 penalty raises the variable."""
    ds = sweep.ds
    lr, ds = float(ds.lr[0]), ds.isel(lr=0)
    return [("", f"At LR {lr:g}, a larger L2 penalty raises {phrase(claim.variable)} (L2 adds to a large LR).",
             verdicts.trend(ds, claim.variable, 1, dim="weight_decay"))]


def _correlation(claim: Claim, res: Results, roles: Roles) -> list[Judged]:
    """Fig. 12: over every compared run of the role's sweeps (each that learns its task), the claim's
    ``y`` (unbiased accuracy) rises with its ``variable`` (the peak BC loss ratio), centred per sweep."""
    x, y = claim.variable, "test_acc"
    loaded = {f: ds for f in roles.get(claim.role, []) if (ds := res.sweep(f)) is not None and x in ds}
    learning = {f: ds for f, ds in loaded.items() if not verdicts.learns(ds)}
    if not loaded:
        return []
    statement = (f"Over runs, a higher peak of {phrase(x).removeprefix('the largest ')} goes with higher "
                 f"{phrase(y)}.")
    if not learning:
        return [Judged(statement, f"{len(loaded)} sweeps pooled",
                       Verdict("untestable", kind="correlation", reason="none of the pooled sweeps learns its task"),
                       folder=claim.role)]
    runs = mechanism.runs_table(learning, x=x, y=y)  # by folder: two sweeps may share a title
    left_out = f", {len(loaded) - len(learning)} left out (not learning their task)" if len(learning) < len(loaded) \
        else ""
    return [Judged(statement, f"{len(learning)} sweeps pooled{left_out}",
                   verdicts.correlation(runs[x], runs[y], runs["sweep"], expected=claim.expected), folder=claim.role)]


JUDGES["correlation"] = _correlation


DYNAMICS = {"logit_norm": "The logit norm grows more at the large LR",
            "param_norm": "The parameter norm grows more at the large LR",
            "confident_bc": "More BC samples are confidently mispredicted at the large LR"}


@per_sweep("dynamics", needs=("steps", "logit_norm", "param_norm", "confident_bc", "bc_loss_ratio"))
def _dynamics(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Fig. 13: over the steps both runs of a seed took, the large LR ends with a larger value of the
    claim's variable (logit or parameter norm; the peak confidently mispredicted BC share)."""
    ds = sweep.ds
    if len(compared(ds)) < 2:
        return [("", f"{DYNAMICS[claim.variable]}.", Verdict("untestable", reason="fewer than two compared LRs"))]
    d = mechanism.dynamics_ends(ds)
    pair = f"LR {d.attrs['hi']:g} against {d.attrs['lo']:g}"
    var = claim.variable
    return [("", f"{DYNAMICS[var]} ({pair}, over the steps both took).",
             verdicts.contrast(d[var].sel(end="low"), d[var].sel(end="high"), claim.expected, look=look(ds, var)))]


SCALING = {"bc_loss_share": "Prop. 1: as the logits scale up ({alphas}), the BC samples' share of the loss rises.",
           "spurious_grad_share": "Prop. 2, measured on inputs: as the logits scale up ({alphas}), the spurious inputs' "
                                  "share of the input gradient rises (the paper's Prop. 2 is about the gradient norms "
                                  "of the spurious and core subnetworks; the input gradient is our stand-in)."}


def _scaling(claim: Claim, res: Results, roles: Roles) -> list[Judged]:
    """Prop. 1 and its input-gradient stand-in for Prop. 2 on the chapter's logit-scaling results:
    from the smallest to the largest logit scale the claim's share rises (paired over seeds)."""
    out = []
    for folder in roles.get(claim.role, []):
        ds, sweep = res.derived(folder, "logit_scaling"), res.sweep(folder)
        if ds is None or sweep is None:
            continue
        alphas = f"from alpha {float(ds.alpha[0]):g} to {float(ds.alpha[-1]):g}"
        first, last = ds[claim.variable].isel(alpha=0), ds[claim.variable].isel(alpha=-1)
        verdict = verdicts.contrast(first, last, claim.expected, points=ds.sizes["alpha"],
                                    look=variables.Presentation(bounds=(0.0, 1.0), sesoi=0.02))
        fails = verdicts.learns(sweep)
        out.append(Judged(SCALING[claim.variable].format(alphas=alphas), title(sweep),
                          verdicts.with_reason(verdict, fails) if fails and verdict.verdict != "untestable"
                          else verdict, folder=folder))
    return out


JUDGES["scaling"] = _scaling


@per_sweep("persistence", needs=("neuron_csi", "neuron_bsi", "neuron_csi_final"))
def _persistence(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Fig. 18: at the largest compared LR, neurons class-dominant at a snapshot stay class-dominant
    to the end of training more often than bias-dominant ones stay bias-dominant (per seed, the
    mean over the snapshots after step 0 of the difference of the two shares)."""
    ds = sweep.ds
    lrs = compared(ds)
    hi = lrs[-1] if lrs else float(ds.lr.max())
    statement = (f"At LR {hi:g}, neurons that are class-dominant during training stay class-dominant more often "
                 f"than bias-dominant ones stay bias-dominant.")
    if not ds.sizes.get("snapshot"):
        return [("", statement, Verdict("untestable", reason="the sweep recorded no snapshots (metrics.snapshot_steps)"))]
    stay = mechanism.persistence(ds).sel(lr=hi)
    stay = stay.sel(snapshot=stay.snapshot > 0)
    effect = (stay.stay_class - stay.stay_bias).mean("snapshot", skipna=True)
    return [("", statement, verdicts.from_effects(effect.values, claim.expected, points=stay.sizes["snapshot"],
                                                  sesoi=0.02))]


@per_sweep("switch", needs=("test_acc",))
def _switch(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Supplement Fig. 30 (left): per switch step t, training at the large LR up to t and at the small
    LR after it keeps more than half of the large LR's accuracy gain (paired over seeds with the
    constant-LR runs of the ``constant`` role, which share each seed's initialisation)."""
    ds = sweep.ds
    base = next((d for f in sweep.roles.get("constant", []) if (d := sweep.res.sweep(f)) is not None), None)
    cfg = config(ds)
    ds = ds.isel(lr=0)
    high, low = ds.lr.item(), ds.lr.item() * cfg["train"]["schedule_factor"]
    if base is None or not {high, low} <= set(base.lr.values.tolist()):
        return []
    seeds = [s for s in ds.seed.values.tolist() if s in base.seed.values.tolist()]
    ends = base.test_acc.sel(seed=seeds)
    middle = (ends.sel(lr=low) + ends.sel(lr=high)) / 2
    rows = []
    for t in ds.schedule_at.values:
        kept = ds.test_acc.sel(schedule_at=t, seed=seeds)
        statement = (f"Switching from LR {high:g} to LR {low:g} after step {int(t)} keeps more than half of the large "
                     f"LR's accuracy gain (above the midpoint of the two constant-LR runs).")
        rows.append((f"t = {int(t)}", statement, verdicts.contrast(middle.values, kept.values, 1,
                                                                   look=look(ds, "test_acc"))))
    return rows


@per_sweep("soups", needs=("test_acc", "prunability"))
def _soups(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Supplement Fig. 30 (right): the soup of the smallest- and largest-LR models separates robustness
    from compressibility (see :func:`lrsc.soup.judge`)."""
    ds = sweep.ds
    soups = sweep.res.derived(sweep.folder, "soups")
    if soups is None:
        return []
    return [("", statement, verdict) for statement, verdict in soup.judge(soups, *mechanism.low_high(ds))]


@per_sweep("deeplift")
def _deeplift(claim: Claim, sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Supplement Fig. 14: DeepLift gives IG's picture: with DeepLift attributions too, the claim's
    variable (attribution entropy, background share) falls from the smallest to the largest compared LR."""
    ds = sweep.ds
    derived = sweep.res.derived(sweep.folder, "attribution_methods")
    var = claim.variable
    if derived is None or var not in derived or not derived[var].notnull().any():
        return []
    dl = derived[var].sel(attribution="DeepLift")
    return [("", f"With DeepLift attributions, {phrase(var)} {moves(claim.expected)} from the smallest to the "
             f"largest compared LR.", verdicts.contrast(dl.sel(end="low"), dl.sel(end="high"), claim.expected,
                                                        look=look(ds, var)))]


def _erm_sweep(sweep: Sweep) -> xr.Dataset | None:
    """The chapter's ERM sweep (of its ``erm`` role) on the method sweep's task, which it is compared with."""
    want = baselines.task(sweep.ds)
    return next((d for f in sweep.roles.get("erm", []) if (d := sweep.res.sweep(f)) is not None
                 and baselines.task(d) == want), None)


def _against_erm(claim: "Claim", sweep: Sweep, at_selected: bool) -> list[tuple[str, str, Verdict]]:
    """ERM at its LR selected on validation against the sweep's method at its default LR or at its
    own selected LR (see :mod:`lrsc.baselines`): the claim's variable is higher for ERM, paired over
    the seeds both sweeps ran."""
    ds, erm, var = sweep.ds, _erm_sweep(sweep), claim.variable
    if erm is None or var not in erm:
        return []
    who, erm_lr = baselines.name(ds), baselines.selected_lr(erm)
    lr = baselines.selected_lr(ds) if at_selected else baselines.default_lr(ds)
    where = "at its own LR selected on validation" if at_selected else "at its default LR"
    statement = f"ERM at its LR selected on validation reaches higher {phrase(var)} than {who} {where}."
    if erm_lr is None or lr is None:
        missing = "ERM's" if erm_lr is None else f"{who}'s"
        return [(who, statement, Verdict("untestable", reason=f"no LR of {missing} sweep is compared (every seed fit "
                                                              f"its training set, none diverged) with a validation "
                                                              f"score"))]
    if lr not in compared(ds):
        return [(who, statement, Verdict("untestable", reason=f"{who} at LR {lr:g}: some seed did not fit its "
                                                              f"training set or diverged"))]
    seeds = sorted(set(ds.seed.values.tolist()) & set(erm.seed.values.tolist()))
    statement = (f"ERM at LR {erm_lr:g} (selected on validation) reaches higher {phrase(var)} than {who} "
                 f"{where}, LR {lr:g}.")
    verdict = verdicts.contrast(ds[var].sel(lr=lr, seed=seeds).values, erm[var].sel(lr=erm_lr, seed=seeds).values,
                                claim.expected, look=look(ds, var))
    fails = verdicts.learns(erm)
    return [(who, statement, verdicts.with_reason(verdict, f"ERM: {fails}") if fails else verdict)]


@per_sweep("erm_vs_default")
def _erm_vs_default(claim: "Claim", sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """ERM at its selected LR against the method at its default LR."""
    return _against_erm(claim, sweep, at_selected=False)


@per_sweep("erm_vs_selected")
def _erm_vs_selected(claim: "Claim", sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """ERM at its selected LR against the method at its own selected LR."""
    return _against_erm(claim, sweep, at_selected=True)


@per_sweep("lr_interaction")
def _lr_interaction(claim: "Claim", sweep: Sweep) -> list[tuple[str, str, Verdict]]:
    """Method x LR: from the smallest to the largest LR compared in both sweeps, the method's change
    in the claim's variable differs from ERM's (per seed, the difference of the two changes)."""
    ds, erm, var = sweep.ds, _erm_sweep(sweep), claim.variable
    if erm is None or var not in erm:
        return []
    who = baselines.name(ds)
    both = sorted(set(compared(ds)) & set(compared(erm)))
    statement = f"A large LR changes {who}'s {phrase(var)} by a different amount than ERM's (method × LR)."
    if len(both) < 2:
        return [(who, statement, Verdict("untestable", reason=f"fewer than two LRs compared in both {who}'s and "
                                                              f"ERM's sweeps ({len(both)})"))]
    lo, hi = both[0], both[-1]
    seeds = sorted(set(ds.seed.values.tolist()) & set(erm.seed.values.tolist()))
    change = lambda d: (d[var].sel(lr=hi, seed=seeds) - d[var].sel(lr=lo, seed=seeds)).values  # noqa: E731
    shown = look(ds, var)
    verdict = verdicts.from_effects(shown.scale * (change(ds) - change(erm)), claim.expected, points=len(both),
                                    units=shown.effect_units, sesoi=shown.sesoi)
    statement = (f"From LR {lo:g} to LR {hi:g}, {who}'s {phrase(var)} changes by a different amount than ERM's "
                 f"(method × LR).")
    fails = verdicts.learns(erm)
    return [(who, statement, verdicts.with_reason(verdict, f"ERM: {fails}") if fails else verdict)]
