"""Every benchmark in one call: :func:`run` measures, then turns the measurements into the
table's rows and a summary of headline ratios (the JSON keys of ``python -m lrsc.bench``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from lrsc.bench.cases import (BATCH, Case, batch_mate_difference, default_cases, step_flops, time_channels_last,
                              time_training, training_flops)
from lrsc.bench.clock import MATMUL_SIZE, matmul_flops
from lrsc.bench.datapath import time_data_path
from lrsc.bench.overhead import CLASSES, IN, SAMPLES, WIDTH, time_overhead
from lrsc.bench.profile import hot_product_rate, step_profile

Timed = tuple[float, float, list[float]]  # median baseline seconds, median lrsc seconds, each round's ratio
DATA_PATHS = (("parity", (16,), 10000), ("Colored-MNIST size", (3, 28, 28), 10000))


@dataclass
class Measurements:
    """What :func:`measure` timed; ``peak`` is the dense matmul speed in FLOP/s."""

    peak: float
    training: list[tuple[Case, Timed]]
    layouts: list[tuple[Case, Timed]]
    drift: dict[str, float]
    drift_steps: int
    overhead: dict[str, Timed]
    overhead_steps: int
    overhead_rounds: int
    data_paths: list[tuple[str, int, float, float]]  # label, samples, lrsc's and the DataLoader's seconds
    breakdown: dict[str, float] = field(default_factory=dict)
    hot: float = 0.0


def run(quick: bool = False, threads: int | None = None, repeats: int = 3,
        training_cases: list[Case] | None = None, device: torch.device | str = "cpu") -> tuple[list[dict], dict]:
    """Run every benchmark on ``device`` at ``threads`` threads (default: torch's), each
    training case (default: ``default_cases(quick)``) ``repeats`` times; returns the table's rows and
    a summary with the headline ratios. Prints nothing. The profiled step breakdown runs on
    the CPU only. Times are in seconds, FLOP rates in FLOP/s unless the key says GFLOP/s."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = torch.device(device)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads or threads_before)
    try:
        start = time.perf_counter()
        measured = measure(quick, repeats, training_cases or default_cases(quick), device)
        rows, summary = summarise(measured, repeats, device)
        summary["seconds"] = time.perf_counter() - start
        return rows, summary
    finally:
        torch.set_num_threads(threads_before)


def _warm_up(training_cases: list[Case], device: torch.device) -> None:
    """Train a little of everything once, untimed: the first call of each kernel sets it up
    (the first convolution of each shape chooses its algorithm)."""
    time_training(Case("warm-up", 2, 5, (16,), 200, 2, 500), repeats=1, device=device)
    for case in training_cases:
        if case.model != "fcn":
            time_training(replace(case, steps=1), repeats=1, device=device)


def measure(quick: bool, repeats: int, training_cases: list[Case], device: torch.device) -> Measurements:
    """Time every benchmark; the matmul peak is the faster of before and after, since load from
    elsewhere only slows it."""
    peak = matmul_flops(device=device)
    _warm_up(training_cases, device)
    training = [(case, time_training(case, repeats, device)) for case in training_cases]
    cnns = sorted({c.width: c for c in training_cases if c.model == "cnn"}.values(), key=lambda c: c.width)
    layouts = [(case, time_channels_last(case, repeats, device)) for case in cnns]
    # does a model's result depend on which others share its stack? the narrowest CNN, a parity FCN; a
    # few steps can leave a grouped convolution's rounding difference at exactly 0, so take more
    drift_steps = 10 if quick else 60
    drift = {"fcn": batch_mate_difference(Case("parity", 4, 0, (16,), 200, 2, 1000), drift_steps, device)}
    if cnns:
        drift["cnn"] = batch_mate_difference(cnns[0], drift_steps, device)
    steps, rounds = (300 if quick else 1000), 2 * repeats + 1  # short rounds: more of them
    overhead = {"mlp": time_overhead(True, steps, rounds, device), "fcn": time_overhead(False, steps, rounds, device)}
    data_paths = [(label, n, *time_data_path(n, shape, device=device)) for label, shape, n in DATA_PATHS]
    measured = Measurements(peak, training, layouts, drift, drift_steps, overhead, steps, rounds, data_paths)
    parity = [c for c in training_cases if c.parity]
    if parity:
        largest = max(parity, key=lambda c: c.models)
        if device.type == "cpu":
            measured.breakdown = step_profile(largest.models, width=int(largest.width))
        measured.hot = hot_product_rate(largest.models, int(largest.width), device=device)
    measured.peak = max(peak, matmul_flops(device=device))
    return measured


def _row(label: str, baseline: float, ours: float, ratios: list[float] | None = None, flops: float = 0.0,
         peak: float = 0.0) -> dict:
    """A table row: seconds of the baseline and of lrsc, their ratio, each round's extremes and,
    given ``flops`` (of the work timed) and ``peak`` (FLOP/s), the rates achieved."""
    row = {"benchmark": label, "baseline (s)": baseline, "lrsc (s)": ours, "speedup": baseline / ours}
    if ratios:
        row.update({"speedup min": min(ratios), "speedup max": max(ratios)})
    if flops:
        row.update({"lrsc GFLOP/s": flops / ours / 1e9, "of matmul peak": flops / ours / peak,
                    "baseline of peak": flops / baseline / peak})
    return row


def _training_rows(m: Measurements, summary: dict) -> list[dict]:
    """One row per training case, one after another (baseline) against batched (lrsc)."""
    rows = []
    narrowest_cnn = min((c.width for c, _ in m.training if c.model == "cnn"), default=None)
    for case, (seq, bat, ratios) in m.training:
        flops = training_flops(case)
        rows.append(_row(f"{case.label}, M={case.models}, {case.steps} steps", seq, bat, ratios, flops, m.peak))
        key = f"batched_speedup_parity_m{case.models}" if case.parity else f"batched_speedup_{case.tag}"
        if case.sgd:
            key += "_sgd_settings"
        if case.parity or case.model == "cnn":
            summary[key], summary[f"{key}_range"] = seq / bat, [min(ratios), max(ratios)]
        if case.parity and not case.sgd and case.models == 24:
            summary["flops_fraction"] = flops / bat / m.peak
            summary["sequential_flops_fraction"] = flops / seq / m.peak
            # the speedup if the batched matmuls ran at the dense-matmul rate and nothing else took time
            summary["speedup_at_matmul_peak_parity_m24"] = seq / (flops / m.peak)
        if case.model == "cnn" and case.width == narrowest_cnn and "cnn_flops_fraction" not in summary:
            # the narrowest CNN trained one at a time, as the sweep trains conv nets
            summary["cnn_flops_fraction"] = flops / seq / m.peak
            summary["cnn_flops_width"] = case.width
    return rows


def _layout_rows(m: Measurements, summary: dict) -> list[dict]:
    """One row per CNN width: a step in the default layout (baseline) against channels_last."""
    rows = []
    for case, (plain, last, ratios) in m.layouts:
        rows.append(_row(f"CNN width {case.width:g}, one model, time per step of {case.steps}: "
                         "contiguous (baseline) vs channels_last", plain, last, ratios, step_flops(case), m.peak))
        key = f"channels_last_speedup_cnn_w{case.width:g}".replace(".", "")
        summary[key], summary[f"{key}_range"] = plain / last, [min(ratios), max(ratios)]
    return rows


def _overhead_rows(m: Measurements, summary: dict) -> list[dict]:
    """The one-model loop against a plain torch loop: with a bias (autograd) and without (stacked kernel)."""
    rows = []
    layers = f"{IN}-{WIDTH}-{CLASSES}"
    for key, what in (("mlp", "MLP with bias, lrsc.train's loop"), ("fcn", "bias-free FCN, the stacked kernel")):
        ours, plain, ratios = m.overhead[key]
        rows.append(_row(f"one model, {layers} {what}, {m.overhead_steps} steps: plain torch loop (baseline) vs "
                         "lrsc.train.train", plain, ours, [1 / r for r in ratios]))
        name = "one_model_overhead" + ("_fcn" if key == "fcn" else "")
        summary[name], summary[f"{name}_range"] = ours / plain, [min(ratios), max(ratios)]
    summary.update(one_model_layers=layers, one_model_steps=m.overhead_steps, one_model_rounds=m.overhead_rounds,
                   one_model_samples=SAMPLES)
    return rows


def _data_rows(m: Measurements, summary: dict) -> list[dict]:
    """One row per sample shape: a DataLoader's epoch (baseline) against lrsc's indexing."""
    rows = []
    for label, n, ours, theirs in m.data_paths:
        rows.append(_row(f"data path: one epoch of {n} {label} samples, batch 100", theirs, ours))
        summary["data_path_speedup" if label == "parity" else "data_path_speedup_cmnist"] = theirs / ours
    return rows


def _parity_summary(m: Measurements, summary: dict) -> None:
    """The batched parity step's profile, its hot product's rate and the parity FCN's size."""
    parity = [c for c, _ in m.training if c.parity]
    if not parity:
        return
    largest = max(parity, key=lambda c: c.models)
    summary.update(parity_layers=largest.layers, parity_width=int(largest.width), parity_models=largest.models,
                   parity_step_mflop=step_flops(largest) / 1e6, hot_product_of_peak=m.hot / m.peak)
    if m.breakdown:
        summary.update({f"step_share_{k}": m.breakdown[k] for k in ("wide", "thin", "other")},
                       wide_products_of_peak=m.breakdown["wide_rate"] / m.peak)


def summarise(m: Measurements, repeats: int, device: torch.device) -> tuple[list[dict], dict]:
    """The table's rows and the summary of headline ratios from the measurements."""
    summary = {"device": str(device), "threads": torch.get_num_threads(), "matmul_gflops": m.peak / 1e9,
               "matmul_size": MATMUL_SIZE, "repeats": repeats, "batch_size": BATCH}
    _parity_summary(m, summary)
    rows = _training_rows(m, summary) + _layout_rows(m, summary) + _overhead_rows(m, summary)
    rows += _data_rows(m, summary)
    summary.update({f"batch_mate_weight_diff_{k}": v for k, v in m.drift.items()}, batch_mate_steps=m.drift_steps)
    return rows, summary


def format_table(rows: list[dict]) -> str:
    """The rows as a plain-text table, numbers to 3 significant digits."""
    cols = list(dict.fromkeys(c for r in rows for c in r))
    cells = [[r["benchmark"]] + [f"{r[c]:.3g}" if c in r else "" for c in cols[1:]] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def ratio_says(low: float, high: float) -> str:
    """A speed ratio's finding from the range of its per-round ratios (above 1 is a gain):
    ``faster`` when every round's ratio is above 1, ``slower`` when every one is below."""
    return "faster" if low > 1 else "slower" if high < 1 else "neither clearly faster nor slower"


def layout_says(summary: dict, widths: tuple[str, ...] = ("0.125", "0.25")) -> str:
    """What the ``channels_last`` rows of a benchmark ``summary`` find, width by width, in words,
    e.g. ``slower at widths 0.125 and 0.25 (faster: ...)``: widths with the same finding share a clause."""
    found: dict[str, list[str]] = {}
    for width in widths:
        found.setdefault(ratio_says(*summary[f"channels_last_speedup_cnn_w{width.replace('.', '')}_range"]),
                         []).append(width)
    return "; ".join(f"{said} at width{'s' * (len(ws) > 1)} {' and '.join(ws)}" for said, ws in found.items()) \
        + " (faster: every single round's ratio above 1; slower: every one below)"
