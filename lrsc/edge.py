"""The paper's LR protocol: a sweep from a small LR up to the edge of stability, found by probing.

The paper sweeps each setting "up to the point of divergence or drastic performance loss in
test accuracy among any one of the seeds". A sweep file asks for that with an LR axis written
as a mapping, e.g. ``lr: {edge: true, start: 0.1, factor: 2, n: 6}``: LRs on the ladder
``start * factor**k``. :func:`resolve` probes the ladder from ``start`` — upwards while every
seed is stable, downwards while some seed is not — training every run of the sweep at one LR
at a time (full runs with the sweep's own settings, so the sweep reuses them). An LR is
*unstable* when some seed diverges (a non-finite value, a dead network, a collapse to chance
in training) or loses more than ``loss`` of the best above-chance unbiased accuracy seen on the
ladder (the paper's "drastic performance loss", whose threshold our copy of the paper lacks;
ours is a parameter). The *edge* is the largest stable LR below the first unstable one; the
sweep's LRs are the ``n`` ladder LRs up to the edge, and the unstable LR above it, which stays
in the results (divergence is a result, shown in the figures; it is not compared).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from lrsc.errors import ConfigError


@dataclass(frozen=True)
class EdgeSpec:
    """An LR axis to the edge of stability (see the module docstring).

    start: the first LR probed; factor: the ratio of neighbouring LRs (> 1); n: LRs of the sweep up
    to and including the edge (its span is ``factor ** (n - 1)``); loss: the share of the best
    above-chance accuracy a seed may lose before its LR counts as a drastic loss; probes: the most
    LRs probed before giving up on finding the edge.
    """

    start: float
    factor: float = 2.0
    n: int = 6
    loss: float = 0.5
    probes: int = 8

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> "EdgeSpec":
        """Check an ``lr`` grid mapping (``edge: true`` plus the fields; ``span`` may stand for
        ``factor``, as ``span ** (1 / (n - 1))``); raises ConfigError naming the bad key."""
        given = dict(value)
        if given.pop("edge", None) is not True:
            raise ConfigError(f"grid.lr must be a list of LRs, or a mapping with edge: true (the protocol up to the "
                              f"edge of stability, e.g. {{edge: true, start: 0.1, factor: 2, n: 6}}); got {value!r}")
        if "span" in given:
            if "factor" in given:
                raise ConfigError("grid.lr: give factor or span, not both")
            span, n = given.pop("span"), given.get("n", cls.n)
            if not isinstance(span, (int, float)) or isinstance(span, bool) or span <= 1 or \
                    not isinstance(n, int) or n < 2:
                raise ConfigError(f"grid.lr.span must be a number above 1 with n at least 2, got span={span!r}, n={n!r}")
            given["factor"] = float(span) ** (1 / (n - 1))
        known = {"start", "factor", "n", "loss", "probes"}
        unknown = set(given) - known
        if unknown:
            raise ConfigError(f"unknown key grid.lr.{sorted(unknown)[0]}; valid keys: edge, start, factor, span, n, "
                              f"loss, probes")
        if "start" not in given:
            raise ConfigError("grid.lr needs start: the first LR to probe (e.g. start: 0.1)")
        checks = {"start": (float, lambda v: v > 0, "positive"), "factor": (float, lambda v: v > 1, "above 1"),
                  "n": (int, lambda v: v >= 2, "at least 2"), "loss": (float, lambda v: 0 < v <= 1, "in (0, 1]"),
                  "probes": (int, lambda v: v >= 1, "at least 1")}
        for key, v in given.items():
            kind, ok, says = checks[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()) \
                    or not np.isfinite(v) or not ok(v):
                raise ConfigError(f"grid.lr.{key} must be {'an integer' if kind is int else 'a number'} {says}, "
                                  f"got {v!r}")
            given[key] = kind(v)
        return cls(**given)

    def lr(self, k: int) -> float:
        """The ``k``-th LR of the ladder (k may be negative), to 6 significant digits."""
        return float(f"{self.start * self.factor ** k:.6g}")


def spec_of(cfg: dict) -> EdgeSpec | None:
    """The sweep's edge protocol, when its ``lr`` axis asks for one."""
    lr = cfg.get("grid", {}).get("lr")
    return EdgeSpec.from_config(lr) if isinstance(lr, Mapping) else None


@dataclass(frozen=True)
class Probe:
    """What one LR of the ladder gave: how many of its runs diverged, the lowest and the mean of its
    seeds' unbiased accuracy, and the chance accuracy."""

    lr: float
    runs: int
    diverged: int
    worst_acc: float
    mean_acc: float
    chance: float


def probe_of(ds: xr.Dataset, lr: float) -> Probe:
    """The :class:`Probe` of a collected one-LR sweep ``ds``."""
    acc = ds.test_acc.where(~ds.diverged)
    chance = float(ds.chance_acc.max()) if "chance_acc" in ds and ds.chance_acc.notnull().any() else 0.0
    finite = acc.notnull().any()
    return Probe(lr, int(ds.diverged.size), int(ds.diverged.sum()), float(acc.min()) if finite else float("nan"),
                 float(acc.mean()) if finite else float("nan"), chance)


def _stable(p: Probe, best: float, loss: float) -> bool:
    """No run diverged, and no seed kept less than ``1 - loss`` of the best above-chance accuracy
    ``best`` (NaN: nothing to compare with yet)."""
    if p.diverged or not np.isfinite(p.worst_acc):
        return False
    return not np.isfinite(best) or p.worst_acc - p.chance >= (1 - loss) * (best - p.chance)


def resolve(cfg: dict, train_at: Callable[[float], xr.Dataset]) -> dict:
    """``cfg`` with its edge protocol resolved: ``grid.lr`` the list of LRs, and ``edge``, what the
    probe ran (each LR's :class:`Probe`, the edge, the unstable LR above it, the rule).

    ``train_at(lr)`` trains (or reads from the run store) every run of the sweep at ``lr`` and
    returns them collected. Raises ConfigError when no stable LR is found within ``probes``."""
    spec = spec_of(cfg)
    probes: dict[int, Probe] = {}

    def at(k: int) -> Probe:
        if k not in probes:
            probes[k] = probe_of(train_at(spec.lr(k)), spec.lr(k))
        return probes[k]

    def stable(k: int) -> bool:
        p = at(k)
        best = max([q.mean_acc for q in probes.values() if not q.diverged and np.isfinite(q.mean_acc)],
                   default=float("nan"))
        return _stable(p, best, spec.loss)

    k = 0
    if stable(0):
        while stable(k) and len(probes) < spec.probes:
            k += 1
        edge, top = (k - 1, k) if not stable(k) else (k, None)
    else:
        while not stable(k) and len(probes) < spec.probes:
            k -= 1
        if not stable(k):
            raise ConfigError(f"grid.lr: every probed LR from {spec.lr(k)} to {spec.start} is unstable; lower "
                              f"grid.lr.start")
        edge, top = k, k + 1
    ladder = [spec.lr(i) for i in range(edge - spec.n + 1, edge + 1)] + ([spec.lr(top)] if top is not None else [])
    out = {**cfg, "grid": {**cfg["grid"], "lr": ladder}}
    out["edge"] = {"spec": asdict(spec), "edge": spec.lr(edge), "unstable": spec.lr(top) if top is not None else None,
                   "probes": [asdict(probes[i]) for i in sorted(probes)]}
    return out


def assumed(cfg: dict) -> list[float]:
    """The LRs the sweep ``cfg`` trains if its probe climbs from ``start`` and finds the edge at the
    ``n``-th LR of the ladder: the fewest it can train (``n`` up to the edge and the unstable one
    above). Probing may go further up, or down from ``start``: the sweep then trains up to
    ``probes - 1`` LRs more."""
    spec = spec_of(cfg)
    return [spec.lr(k) for k in range(spec.n + 1)]


def trained(cfg: dict) -> list[float]:
    """Every LR a resolved sweep ``cfg`` (see :func:`resolve`) trained: its grid's, and the probes'."""
    probed = [p["lr"] for p in cfg.get("edge", {}).get("probes", [])]
    return sorted(set(cfg["grid"]["lr"]) | set(probed))


def at_lr(cfg: dict, lr: float) -> dict:
    """The sweep ``cfg`` at the single LR ``lr`` (a probe's sweep)."""
    return {**cfg, "grid": {**cfg["grid"], "lr": [lr]}, "title": f"{cfg.get('title', '')}: probe at LR {lr:g}"}
