"""What a book profile will train, before it trains: its runs, how many are stored, and their time on this device.

:func:`plan_profile` expands every sweep the profile's chapters declare (:mod:`lrsc.sweeplist`)
into its runs, each named by its hash as a sweep names it (no data is read for that), looks
each up in its chapter's run store, and gives its step cap. Two kinds of sweep cannot be
known exactly before something has trained: a sweep to the edge of stability (:mod:`lrsc.edge`)
whose probes are not all stored, which is assumed to find its edge at the ``n``-th LR of its
ladder (the fewest runs it can train; see :func:`lrsc.edge.assumed`), and a sweep whose LRs
come from another's results that are not stored, which is assumed to take the pair among that
sweep's stable LRs. Each such run says so. With ``steps`` > 0 it times, on the device, a few
training steps and forward passes of each model, input size, batch size and optimiser (as a
run trains: on the CPU one thread, :data:`lrsc.worker.THREADS`), and counts their FLOPs, for
:func:`report`'s estimate: a run's step cap times a step, plus its checks of the training set
every ``eval_every`` steps. Caps are upper bounds: a run stops at the first check that finds
100% training accuracy.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr

from lrsc import config as config_mod
from lrsc import datasets, edge, models, paper, sweeplist, train
from lrsc.book import profile_chapters
from lrsc.collect import up_to_date
from lrsc.errors import ConfigError
from lrsc.paths import project_root
from lrsc.seeding import check_device, pick_device
from lrsc.settings import TrainSettings
from lrsc.store import FINISHED, RunStore, default_store, name_of
from lrsc.plan import Planner
from lrsc.worker import fixed_threads

FORWARD_SHARE = 1 / 3  # a forward pass's share of a training step's FLOPs (the backward pass takes about twice as many)


@dataclass(frozen=True)
class PlannedRun:
    """One run a chapter needs: its chapter and sweep folder, its grid point, hash and resolved
    config, its step cap, whether the run store holds it finished, and why its LR is only
    assumed (``""`` when it is known)."""

    chapter: str
    sweep: str
    point: dict
    hash: str
    config: dict
    cap: int
    stored: bool
    assumed: str = ""

    @property
    def timing_key(self) -> str:
        """What its time per step depends on: data, model, batch size, optimiser and precision."""
        c, t = self.config, self.config["train"]
        return json.dumps([c["dataset"], c["dataset_params"], c["model"], c["model_params"], t["batch_size"],
                           t["optimizer"], t["asam_rho"] > 0, t["precision"]], sort_keys=True, default=str)


@dataclass(frozen=True)
class Timing:
    """What a few timed steps gave on the device: seconds of one training step, seconds of the
    forward pass per sample (the checks of the training set), FLOPs of one training step, the
    training set's size; or, in ``note``, why it was not timed."""

    step_s: float = math.nan
    sample_s: float = math.nan
    flops: float = math.nan
    n_train: int = 0
    note: str = ""

    def _checks(self, run: PlannedRun) -> int:
        return math.ceil(run.cap / TrainSettings.from_config(run.config["train"]).eval_every)

    def seconds(self, run: PlannedRun) -> float:
        """The run's seconds at its step cap, one model at a time (NaN when not timed)."""
        return run.cap * self.step_s + self._checks(run) * self.n_train * self.sample_s

    def run_flops(self, run: PlannedRun) -> float:
        """The run's FLOPs at its step cap (NaN when not counted)."""
        per_sample = self.flops * FORWARD_SHARE / TrainSettings.from_config(run.config["train"]).batch_size
        return run.cap * self.flops + self._checks(run) * self.n_train * per_sample


@dataclass
class Plan:
    """Every run of a profile by chapter (a run two chapters share is listed under each), the
    timings by :attr:`PlannedRun.timing_key`, the device timed, what was assumed, and the sweeps
    that could not be planned here (e.g. a local file they name is missing)."""

    profile: str
    runs: list[PlannedRun]
    device: str
    timings: dict[str, Timing] = field(default_factory=dict)
    assumed: dict[str, str] = field(default_factory=dict)  # sweep folder -> what was assumed, in words
    skipped: dict[str, str] = field(default_factory=dict)  # sweep folder -> why it cannot be planned here

    def unique(self) -> list[PlannedRun]:
        """Each run once (the first chapter that needs it)."""
        first: dict[str, PlannedRun] = {}
        for r in self.runs:
            first.setdefault(r.hash, r)
        return list(first.values())


class _NotStored(Exception):
    """A probe of the LR protocol whose results are not stored yet."""


def _probe(out: Path) -> Callable[[float], xr.Dataset]:
    def stored(lr: float) -> xr.Dataset:
        ds = up_to_date(out / "probe" / f"lr_{lr:g}")  # where run_sweep keeps the probe at lr
        if ds is None:
            raise _NotStored
        return ds

    return stored


def _grid(s: sweeplist.Sweep, changes: dict) -> tuple[dict, list[float], str]:
    """The sweep's config as given with ``grid.lr`` every LR it trains, those of its LRs that are
    stable (a settings sweep's source), and why they are assumed (``""``: known)."""
    cfg = config_mod.read(s.params, changes)
    spec = edge.spec_of(cfg)
    if spec is None:
        return cfg, list(cfg["grid"].get("lr") or [config_mod.load(cfg)["train"]["lr"]]), ""
    try:
        resolved = edge.resolve(cfg, _probe(s.out))
        lrs, unstable, why = edge.trained(resolved), resolved["edge"]["unstable"], ""
    except _NotStored:
        lrs = edge.assumed(cfg)
        unstable = lrs[-1]
        why = (f"edge not found yet: assumed at LR {lrs[-2]:g}, {spec.n} LRs of the ladder up from {spec.start:g} "
               f"(probing may train up to {spec.probes - 1} LRs more)")
    return {**cfg, "grid": {**cfg["grid"], "lr": lrs}}, [lr for lr in lrs if lr != unstable], why


def _runs(s: sweeplist.Sweep, cfg: dict, why: str) -> list[PlannedRun]:
    store = RunStore(default_store(s.out))
    full = config_mod.load(cfg)
    out = []
    for raw, point in zip(config_mod.expand(full), config_mod.grid_points(full)):
        run = Planner.resolve(raw)
        h = name_of(Planner.hashed(run))
        stored = store.state(h, verify=False).status in FINISHED
        out.append(PlannedRun(s.chapter, s.folder, point, h, run, TrainSettings.from_config(run["train"]).step_cap,
                              stored, why))
    return out


def plan_profile(root: str | Path = ".", profile: str = "quick", only: list[str] | None = None, device: str = "auto",
                 steps: int = 3) -> Plan:
    """The :class:`Plan` of ``profile``'s chapters (``only``: just these, by name), timed with
    ``steps`` training steps per model and input size on ``device`` (0: not timed, no data read).
    Raises ConfigError for a bad profile, chapter, sweep file or device."""
    root = project_root(root)
    names, params_dir, _ = profile_chapters(root, profile)
    if only:
        unknown = sorted(set(only) - {Path(n).name for n in names})
        if unknown:
            raise ConfigError(f"no chapter {unknown[0]!r}; chapters: {', '.join(Path(n).name for n in names)}")
        names = [n for n in names if Path(n).name in only]
    if steps < 0:
        raise ConfigError(f"--time-steps must be at least 0, got {steps}")
    check_device(device)
    plan = Plan(profile, [], str(pick_device(device)))
    known: dict[Path, tuple[xr.Dataset | None, list[float], str]] = {}  # sweep folder -> results, stable LRs, why
    for chapter in names:
        for s in sweeplist.declared(root, chapter, sweeplist.given_parameters(params_dir, chapter)):
            changes, why = s.changes, ""
            if s.source is not None:
                source, stable, source_why = known.get(s.source, (None, [], "its source sweep is not declared"))
                if source is not None:
                    changes = s.given(source)
                elif len(stable) >= 2:
                    changes = s.at(stable)
                    why = (f"its LRs come from the results of {s.source.name}, not all stored yet: assumed the pair "
                           f"among its stable LRs" + (f" ({source_why})" if source_why else ""))
                else:
                    raise ConfigError(f"chapter {s.chapter}: sweep {s.folder} takes its LRs from {s.source.name}, "
                                      f"which has fewer than two LRs to take them from")
            try:
                cfg, stable, grid_why = _grid(s, changes)
                why = why or grid_why
                runs = _runs(s, cfg, why)
            except ConfigError as e:  # e.g. a local file it names is not on this machine: the others still count
                plan.skipped.setdefault(str(s.out), f"{s.chapter}/{s.folder}: {e}")
                continue
            if s.out not in known:  # a sweep two chapters share is the first one's
                known[s.out] = (None if why else up_to_date(s.out), stable, why)
            plan.runs += runs
            if why:
                plan.assumed.setdefault(str(s.out), f"{s.chapter}/{s.folder}: {why}")
    if steps:
        device_ = pick_device(device)
        for key, run in {r.timing_key: r for r in plan.unique()}.items():
            plan.timings[key] = measure(run.config, device_, steps)
    return plan


def _seconds(fn: Callable[[], object], steps: int, device: torch.device) -> float:
    """Seconds of one call of ``fn``, the mean of ``steps`` calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - started) / steps


def measure(run: dict, device: torch.device, steps: int) -> Timing:
    """Time ``steps`` training steps of the resolved run ``run`` on random inputs of its dataset's
    shape (its model, batch size, optimiser and precision; plain cross-entropy), after one step
    that is not timed and whose FLOPs are counted, and ``steps`` forward passes of a batch."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        info = datasets.check(run["dataset"], run["dataset_params"])
    except ConfigError as e:
        return Timing(note=f"not timed: {e}")
    s = TrainSettings.from_config(run["train"])
    with fixed_threads():
        torch.manual_seed(0)
        try:
            model = models.build(run["model"], input_shape=info.input_shape, num_classes=info.num_classes,
                                 **run["model_params"]).to(device)
        except ConfigError as e:
            return Timing(note=f"not timed: {e}")
        params = list(model.parameters())
        # as the training loop lays out convolution inputs (lrsc.train)
        layout = torch.channels_last if any(p.dim() == 4 for p in params) else torch.contiguous_format
        model.to(memory_format=layout)
        x = torch.randn(s.batch_size, *info.input_shape, device=device)
        x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
        y = torch.randint(info.num_classes, (s.batch_size,), device=device)
        opt = train.make_optimizer(params, s)
        autocast = train.autocast_for(s, device)
        scaler = torch.amp.GradScaler(device.type, enabled=s.precision == "fp16")

        def objective(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            with autocast():
                logits = model(x).float()
            losses = F.cross_entropy(logits, y, reduction="none")
            return losses.mean(), losses, logits

        def step() -> None:
            train.optimizer_step(opt, scaler, objective, (x, y), s.asam_rho > 0)

        with FlopCounterMode(display=False) as counter:
            step()  # the first step allocates: counted, not timed
        step_s = _seconds(step, steps, device)
        model.eval()
        with torch.no_grad():
            sample_s = _seconds(lambda: model(x), steps, device) / s.batch_size
    return Timing(step_s, sample_s, float(counter.get_total_flops()), info.n_train)


def _hours(seconds: float) -> str:
    return "not timed" if math.isnan(seconds) else f"{seconds / 3600:.3g}"


def table(plan: Plan) -> pd.DataFrame:
    """Per chapter, dataset and model: sweeps, runs, runs stored, runs to train, their step caps,
    the steps to train (at the caps) and the hours to train them on the device timed."""
    rows = []
    for r in plan.runs:
        t = plan.timings.get(r.timing_key, Timing())
        rows.append({"chapter": r.chapter, "dataset": r.config["dataset"], "model": r.config["model"],
                     "sweep": r.sweep, "stored": r.stored, "cap": r.cap, "assumed": bool(r.assumed),
                     "train_steps": 0 if r.stored else r.cap, "train_s": 0.0 if r.stored else t.seconds(r)})
    frame = pd.DataFrame(rows, columns=["chapter", "dataset", "model", "sweep", "stored", "cap", "assumed",
                                        "train_steps", "train_s"])
    grouped = frame.groupby(["chapter", "dataset", "model"], sort=False)
    out = pd.DataFrame({
        "sweeps": grouped.sweep.nunique(), "runs": grouped.size(), "stored": grouped.stored.sum(),
        "to train": grouped.size() - grouped.stored.sum(),
        "step caps": grouped.cap.agg(lambda c: f"{c.min()}" if c.min() == c.max() else f"{c.min()}–{c.max()}"),
        "steps to train": grouped.train_steps.sum(),
        "LRs assumed": grouped.assumed.sum()})
    if plan.timings:
        out.insert(6, "hours to train", grouped.train_s.agg(lambda s: s.sum(skipna=False)).map(_hours))
    return out


def report(plan: Plan, tflops: float | None = None, every_run: bool = False) -> str:
    """The plan in words: the :func:`table`, the profile's totals (each run once) in hours on the
    device timed (and at ``tflops`` TFLOP/s sustained, where given) beside the paper's compute,
    what was assumed, and with ``every_run`` a line per run."""
    unique = plan.unique()
    todo = [r for r in unique if not r.stored]
    lines = [f"profile {plan.profile}: {len(unique)} runs ({len(plan.runs)} as the chapters list them, runs that "
             f"chapters share counted under each), {len(unique) - len(todo)} stored, {len(todo)} to train, "
             f"{sum(r.cap for r in todo):,} steps to train at their caps", "",
             table(plan).to_string(), ""]
    if plan.timings:
        def total(runs: list[PlannedRun], what: Callable[[Timing, PlannedRun], float]) -> float:
            """The sum over the timed ones of ``runs``."""
            return sum(what(plan.timings[r.timing_key], r) for r in runs if not plan.timings[r.timing_key].note)

        untimed = sorted({t.note for t in plan.timings.values() if t.note})
        n_untimed = sum(bool(plan.timings[r.timing_key].note) for r in todo)
        where = f"{plan.device}, one CPU thread per run" if plan.device == "cpu" else f"{plan.device}, one run at a time"
        lines.append(f"on this device ({where}), at the step caps: {_hours(total(todo, Timing.seconds))} hours to "
                     f"train what is not stored, {_hours(total(unique, Timing.seconds))} hours for every run"
                     + (f"; {n_untimed} runs to train not timed:" if n_untimed else ""))
        if tflops:
            flops = total(todo, Timing.run_flops)
            lines.append(f"at {tflops:g} TFLOP/s sustained: {_hours(flops / (tflops * 1e12))} hours to train what is "
                         f"not stored ({flops:.3g} FLOPs)")
        lines += [f"  {note}" for note in untimed]
        lines.append("(upper bounds: a run stops at the first check that finds 100% training accuracy; runs that "
                     "train together in the batched kernel take less than one at a time)")
    hours = paper.QUOTES["compute_hours"]
    lines.append(f"the paper: {hours.value} hours on {paper.QUOTES['compute_devices'].value} ({hours.source})")
    if plan.assumed:
        lines += ["", "assumed (known once the runs they depend on are stored):",
                  *(f"  {n}" for n in plan.assumed.values())]
    if plan.skipped:
        lines += ["", "not planned (these sweeps cannot run here as they are):", *(f"  {n}" for n in plan.skipped.values())]
    if every_run:
        lines += ["", "every run (hash, chapter/sweep, grid point, step cap, stored or seconds on this device):"]
        for r in plan.runs:
            t = plan.timings.get(r.timing_key)
            state = "stored" if r.stored else (f"{t.seconds(r):.0f} s" if t and not t.note else "to train")
            where = " ".join(f"{k}={v}" for k, v in r.point.items())
            lines.append(f"  {r.hash}  {r.chapter}/{r.sweep}  {where}  cap {r.cap}  {state}"
                         + ("  (LR assumed)" if r.assumed else ""))
    return "\n".join(lines)
