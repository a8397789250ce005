"""How fast lrsc trains: batched vs one-at-a-time training, achieved FLOP/s, the data path.

    python -m benchmarks.run [--quick] [--threads N] [--repeats R] [--json FILE]

Every ratio is measured in this process, both sides at the same number of threads (torch's
default, all cores, unless ``--threads``). Each training case runs R rounds, one-at-a-time
and batched in turn, and reports the median time of each side, so that a burst of load from
elsewhere on a shared machine moves one round, not the result; the spread of the per-round
ratios is reported beside it. Training runs a fixed number of steps and one evaluation, at
the end, in both paths (``eval_every = max_steps``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset

from lrsc import datasets, models
from lrsc.datasets import Split
from lrsc.train import _StackedFcn, train, train_batched  # the private class: its step is what is profiled


@dataclass
class Case:
    """M models of one FCN trained for ``steps`` SGD steps at batch 100."""

    name: str
    models: int
    steps: int
    input_shape: tuple[int, ...]
    width: int
    num_classes: int
    n_train: int


def cases(quick: bool) -> list[Case]:
    s = 100 if quick else 300
    return [
        Case("parity 16-200-200-2", 8, s, (16,), 200, 2, 10000),
        Case("parity 16-200-200-2", 24, s, (16,), 200, 2, 10000),
        Case("Colored-MNIST size 2352-256-256-10", 8, s // 5, (3, 28, 28), 256, 10, 2000),
        Case("Colored-MNIST size 2352-1024-1024-10", 4, s // 10, (3, 28, 28), 1024, 10, 2000),
    ]


def matmul_flops(size: int = 2000) -> float:
    """Dense float32 matmul speed, FLOP/s (best of 10 products)."""
    a = torch.randn(size, size)
    a @ a
    best = math.inf
    for _ in range(10):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _data(case: Case) -> list[Split]:
    """Three training sets (as three seeds of a sweep), model i trains on set i % 3."""
    if case.input_shape == (16,):
        sets = [datasets.build("parity", seed=s, n_train=case.n_train, n_test=1)[0] for s in range(3)]
    else:
        g = torch.Generator().manual_seed(0)
        sets = []
        for _ in range(3):
            y = torch.randint(case.num_classes, (case.n_train,), generator=g)
            sets.append(Split(torch.rand(case.n_train, *case.input_shape, generator=g), y, y.clone(),
                              case.num_classes, case.num_classes))
    return [sets[i % 3] for i in range(case.models)]


def _nets(case: Case) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [models.build("fcn", input_shape=case.input_shape, num_classes=case.num_classes, width=case.width)
            for _ in range(case.models)]


def time_training(case: Case, repeats: int) -> tuple[float, float, list[float]]:
    """Median seconds to train the case's M models one after another with ``train`` and at
    once with ``train_batched``, over ``repeats`` alternating rounds, and each round's ratio."""
    data = _data(case)
    lrs = [0.01 * (i + 1) for i in range(case.models)]  # small enough that no model stops early
    kwargs = dict(batch_size=100, max_steps=case.steps, eval_every=case.steps)
    sequential, batched = [], []
    for _ in range(repeats):
        nets = _nets(case)
        start = time.perf_counter()
        for i, (net, d) in enumerate(zip(nets, data)):
            train(net, d, lr=lrs[i], seed=i, **kwargs)
        sequential.append(time.perf_counter() - start)
        nets = _nets(case)
        start = time.perf_counter()
        train_batched(nets, data, lr=lrs, seed=list(range(case.models)), **kwargs)
        batched.append(time.perf_counter() - start)
    return statistics.median(sequential), statistics.median(batched), [s / b for s, b in zip(sequential, batched)]


def training_flops(case: Case) -> float:
    """Matmul FLOPs of the case: forward + backward is 6 FLOPs per weight and sample (2 for
    the forward, 4 for the two backward products), the final evaluation 2 per weight and sample."""
    net = _nets(Case(**{**case.__dict__, "models": 1}))[0]
    params = sum(p.numel() for p in net.parameters())
    return case.models * params * (6 * 100 * case.steps + 2 * case.n_train)


@contextmanager
def _without_fd2():
    """Send file descriptor 2 to /dev/null: torch's profiler (kineto) writes status lines, and
    on a machine without a GPU an error about it, straight to it, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def step_profile(models: int = 24, steps: int = 50, width: int = 200) -> dict[str, float]:
    """Where the batched step of ``models`` parity FCNs (16-width-width-2, batch 100) spends
    its time, from torch's profiler (each operator's own wall time on the calling thread, its
    intra-op threads' work included):

    - ``wide``: the products with the width x width weight (that layer's forward, backward
      and weight update), and ``wide_rate``: their FLOP/s;
    - ``thin``: the other products (the 16-input layer, the 2-unit head);
    - ``other``: everything else (ReLU and its backward, softmax, losses, ...).
    The first three are fractions of the step's profiled time.
    """
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(models, *shape, generator=g) * 0.05 for shape in ((width, 16), (width, width), (2, width))]
    x = torch.randn(models, 100, 16, generator=g)
    y = torch.randint(2, (models, 100), generator=g)
    scale = torch.full((models,), 1e-4)
    stacked = _StackedFcn()
    for _ in range(5):
        stacked.step(weights, x, y, scale)
    with _without_fd2():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                stacked.step(weights, x, y, scale)
        events = prof.key_averages(group_by_input_shape=True)
    times = {"wide": 0.0, "thin": 0.0, "other": 0.0}
    for event in events:
        wide = any(list(shape[1:]) == [width, width] for shape in event.input_shapes if len(shape) == 3)
        kind = "other" if "bmm" not in event.key else "wide" if wide else "thin"
        times[kind] += event.self_cpu_time_total / 1e6
    total = sum(times.values())
    wide_flops = 3 * 2 * models * 100 * width * width * steps
    return {**{k: t / total for k, t in times.items()}, "wide_rate": wide_flops / times["wide"]}


def hot_product_rate(models: int = 24, width: int = 200, repeats: int = 20) -> float:
    """FLOP/s of the wide layer's forward product, (models, 100, width) x (models, width, width),
    repeated on the same operands so that they stay in cache (best of 5 rounds)."""
    a, w = torch.randn(models, 100, width), torch.randn(models, width, width)
    out = torch.empty(models, 100, width)
    torch.bmm(a, w.transpose(1, 2), out=out)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.bmm(a, w.transpose(1, 2), out=out)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * models * 100 * width * width / best


def time_data_path(n: int, input_shape: tuple[int, ...], batch_size: int = 100, repeats: int = 3) -> tuple[float, float]:
    """Seconds per epoch to fetch every minibatch of ``n`` samples: lrsc's path (one
    permutation, then index the device tensors) and a DataLoader over a TensorDataset."""
    x, y = torch.randn(n, *input_shape), torch.randint(2, (n,))
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True, generator=g)

    def ours():
        perm = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start:start + batch_size]
            x[idx], y[idx]

    def theirs():
        for _ in loader:
            pass

    times = []
    for fetch in (ours, theirs):
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            fetch()
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times[0], times[1]


def run(quick: bool = False, threads: int | None = None, repeats: int = 3,
        training_cases: list[Case] | None = None) -> tuple[list[dict], dict]:
    """Run every benchmark at ``threads`` threads (default: torch's), each training case
    (default: ``cases(quick)``) ``repeats`` times; returns the table's rows and a summary
    with the headline ratios."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads or threads_before)
    peak = matmul_flops()
    time_training(Case("warm-up", 2, 5, (16,), 200, 2, 500), repeats=1)
    training_cases = training_cases or cases(quick)
    timed = [(case, *time_training(case, repeats)) for case in training_cases]
    parity = [c for c in training_cases if c.input_shape == (16,)]
    if parity:
        largest = max(parity, key=lambda c: c.models)
        breakdown = step_profile(largest.models, width=largest.width)
        hot = hot_product_rate(largest.models, largest.width)
    peak = max(peak, matmul_flops())  # the faster of before and after: load from elsewhere only slows it
    rows, summary = [], {"threads": torch.get_num_threads(), "matmul_gflops": peak / 1e9, "repeats": repeats}
    if parity:
        summary.update({f"step_share_{k}": breakdown[k] for k in ("wide", "thin", "other")},
                       wide_products_of_peak=breakdown["wide_rate"] / peak, hot_product_of_peak=hot / peak)
    for case, seq, bat, ratios in timed:
        flops = training_flops(case)
        rows.append({"benchmark": f"{case.name}, M={case.models}, {case.steps} steps",
                     "baseline (s)": seq, "lrsc (s)": bat, "speedup": seq / bat,
                     "speedup min": min(ratios), "speedup max": max(ratios),
                     "lrsc GFLOP/s": flops / bat / 1e9, "of matmul peak": flops / bat / peak,
                     "baseline of peak": flops / seq / peak})
        if case.input_shape == (16,):
            summary[f"batched_speedup_parity_m{case.models}"] = seq / bat
            if case.models == 24:
                summary["flops_fraction"] = flops / bat / peak
                summary["sequential_flops_fraction"] = flops / seq / peak
                # the speedup if the batched matmuls ran at the dense-matmul rate and nothing else took time
                summary["speedup_at_matmul_peak_parity_m24"] = seq / (flops / peak)
    for label, shape, n in (("parity", (16,), 10000), ("Colored-MNIST size", (3, 28, 28), 10000)):
        ours, theirs = time_data_path(n, shape)
        rows.append({"benchmark": f"data path: one epoch of {n} {label} samples, batch 100",
                     "baseline (s)": theirs, "lrsc (s)": ours, "speedup": theirs / ours})
        summary["data_path_speedup" if label == "parity" else "data_path_speedup_cmnist"] = theirs / ours
    torch.set_num_threads(threads_before)
    return rows, summary


def format_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    cells = [[r["benchmark"]] + [f"{r[c]:.3g}" if c in r else "" for c in cols[1:]] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (about 45 s on 2 cores)")
    parser.add_argument("--threads", type=int, help="torch threads for every benchmark (default: torch's, all cores)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per training case; medians are reported (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and the headline ratios as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    start = time.time()
    rows, summary = run(quick=args.quick, threads=args.threads, repeats=args.repeats)
    print(format_table(rows))
    print(f"medians of {summary['repeats']} rounds; {summary['threads']} thread(s); "
          f"dense matmul (2000x2000 float32): {summary['matmul_gflops']:.0f} GFLOP/s")
    if "step_share_wide" in summary:
        print(f"batched parity step, profiled: width x width products {summary['step_share_wide']:.0%} of the time "
              f"at {summary['wide_products_of_peak']:.0%} of dense peak ({summary['hot_product_of_peak']:.0%} with "
              f"operands in cache); thin products {summary['step_share_thin']:.0%}; other ops {summary['step_share_other']:.0%}")
    if "speedup_at_matmul_peak_parity_m24" in summary:
        print(f"ceiling for batched parity M=24 at dense peak: {summary['speedup_at_matmul_peak_parity_m24']:.1f}x")
    print(f"total {time.time() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
