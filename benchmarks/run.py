"""How fast lrsc trains: batched vs one-at-a-time training, achieved FLOP/s, the data path.

    python -m benchmarks.run [--quick] [--threads N] [--repeats R] [--device DEVICE] [--json FILE]

Every ratio is measured in this process, both sides at the same number of threads (torch's
default, all cores, unless ``--threads``) and on the same device (``--device``, default the
CPU; every tensor and model is built there, and on CUDA the clock is read only after
``torch.cuda.synchronize()``). Each training case runs R rounds, one-at-a-time and batched
in turn, and reports the median time of each side, so that a burst of load from elsewhere on
a shared machine moves one round, not the result; the spread of the per-round ratios is
reported beside it. Training runs a fixed number of steps and one evaluation, at the end, in
both paths (``eval_every = max_steps``). The cases are FCNs (parity and Colored-MNIST sized)
and the VGG11-like CNN at two widths on Colored-MNIST-sized inputs; the one-at-a-time CNN
step is also timed with model and inputs in ``torch.channels_last``.
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
from dataclasses import dataclass, replace

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from lrsc import datasets, models
from lrsc.datasets import Split
from lrsc.train import _StackedFcn, train, train_batched  # the private class: its step is what is profiled


@dataclass
class Case:
    """M models of one architecture (``model``: ``"fcn"``, width in units, or ``"cnn"``,
    width a channel multiplier) trained for ``steps`` SGD steps at batch 100."""

    name: str
    models: int
    steps: int
    input_shape: tuple[int, ...]
    width: float
    num_classes: int
    n_train: int
    model: str = "fcn"
    sgd: tuple[tuple[str, float], ...] = ()  # SGD settings besides the LR, e.g. (("momentum", 0.9),)

    @property
    def tag(self) -> str:
        """The case's part of a JSON key, e.g. ``cnn_m8_w0125`` for 8 CNNs of width 0.125."""
        return f"{self.model}_m{self.models}_w{self.width:g}".replace(".", "")


def cases(quick: bool) -> list[Case]:
    s = 100 if quick else 300
    return [
        Case("parity 16-200-200-2", 8, s, (16,), 200, 2, 10000),
        Case("parity 16-200-200-2", 24, s, (16,), 200, 2, 10000),
        Case("parity 16-200-200-2, momentum 0.9 + L1 + L2", 8, s, (16,), 200, 2, 10000,
             sgd=(("momentum", 0.9), ("weight_decay", 1e-4), ("l1", 1e-5))),
        Case("Colored-MNIST size 2352-256-256-10", 8, s // 5, (3, 28, 28), 256, 10, 2000),
        Case("Colored-MNIST size 2352-1024-1024-10", 4, s // 10, (3, 28, 28), 1024, 10, 2000),
        Case("Colored-MNIST size CNN width 0.125", 8, s // 10, (3, 28, 28), 0.125, 10, 200, "cnn"),
        Case("Colored-MNIST size CNN width 0.25", 8, s // 10, (3, 28, 28), 0.25, 10, 200, "cnn"),
    ]


def _now(device: torch.device) -> float:
    """The clock, read once the device has finished the work queued on it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def matmul_flops(size: int = 2000, device: torch.device | str = "cpu") -> float:
    """Dense float32 matmul speed on ``device``, FLOP/s (best of 10 products)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device)
    a @ a
    best = math.inf
    for _ in range(10):
        start = _now(device)
        a @ a
        best = min(best, _now(device) - start)
    return 2 * size**3 / best


def _data(case: Case, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format
          ) -> list[Split]:
    """Three training sets (as three seeds of a sweep) on ``device``, model i trains on set i % 3."""
    if case.input_shape == (16,):
        sets = [datasets.build("parity", seed=s, n_train=case.n_train, n_test=1)[0] for s in range(3)]
    else:
        g = torch.Generator().manual_seed(0)
        sets = []
        for _ in range(3):
            y = torch.randint(case.num_classes, (case.n_train,), generator=g)
            x = torch.rand(case.n_train, *case.input_shape, generator=g).contiguous(memory_format=memory_format)
            sets.append(Split(x, y, y.clone(), case.num_classes, case.num_classes))
    sets = [d.to(device) for d in sets]
    return [sets[i % 3] for i in range(case.models)]


def _nets(case: Case, device: torch.device,
          memory_format: torch.memory_format = torch.contiguous_format) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [models.build(case.model, input_shape=case.input_shape, num_classes=case.num_classes, width=case.width)
            .to(device, memory_format=memory_format) for _ in range(case.models)]


def time_training(case: Case, repeats: int, device: torch.device) -> tuple[float, float, list[float]]:
    """Median seconds to train the case's M models one after another with ``train`` and at
    once with ``train_batched``, over ``repeats`` alternating rounds, and each round's ratio."""
    data = _data(case, device)
    lrs = [0.01 * (i + 1) for i in range(case.models)]  # small enough that no model stops early
    kwargs = dict(batch_size=100, max_steps=case.steps, eval_every=case.steps, **dict(case.sgd))
    sequential, batched = [], []
    for _ in range(repeats):
        nets = _nets(case, device)
        start = _now(device)
        for i, (net, d) in enumerate(zip(nets, data)):
            train(net, d, lr=lrs[i], seed=i, **kwargs)
        sequential.append(_now(device) - start)
        nets = _nets(case, device)
        start = _now(device)
        train_batched(nets, data, lr=lrs, seed=list(range(case.models)), **kwargs)
        batched.append(_now(device) - start)
    return statistics.median(sequential), statistics.median(batched), [s / b for s, b in zip(sequential, batched)]


def time_channels_last(case: Case, repeats: int, device: torch.device) -> tuple[float, float, list[float]]:
    """Median seconds per step of one of the case's models trained alone with ``train``
    (``case.steps`` steps and the final evaluation), its weights and inputs in the default
    (contiguous, NCHW) layout and in ``torch.channels_last`` (NHWC), over ``repeats``
    alternating rounds, and each round's ratio contiguous / channels_last."""
    one = replace(case, models=1)
    kwargs = dict(lr=0.01, batch_size=100, max_steps=case.steps, eval_every=case.steps)
    data = {fmt: _data(one, device, fmt)[0] for fmt in (torch.contiguous_format, torch.channels_last)}
    times: dict[torch.memory_format, list[float]] = {fmt: [] for fmt in data}
    for _ in range(repeats):
        for fmt, d in data.items():
            net = _nets(one, device, fmt)[0]
            start = _now(device)
            train(net, d, **kwargs)
            times[fmt].append((_now(device) - start) / case.steps)
    plain, last = times[torch.contiguous_format], times[torch.channels_last]
    return statistics.median(plain), statistics.median(last), [p / c for p, c in zip(plain, last)]


def batch_mate_difference(case: Case, steps: int, device: torch.device) -> float:
    """Largest difference in any weight between the first of the case's models trained alone
    with ``train`` and the same model (same initial weights, learning rate, seed and data)
    trained by ``train_batched`` in a stack of four, for ``steps`` steps. It is 0 when the
    model's arithmetic does not depend on its batch-mates."""
    four = replace(case, models=4, steps=steps)
    data = _data(four, device)
    lrs = [0.01 * (i + 1) for i in range(4)]
    kwargs = dict(batch_size=100, max_steps=steps, eval_every=steps)
    alone = _nets(four, device)[0]
    train(alone, data[0], lr=lrs[0], seed=0, **kwargs)
    stacked = _nets(four, device)
    train_batched(stacked, data, lr=lrs, seed=list(range(4)), **kwargs)
    return max((a - b).abs().max().item() for a, b in zip(alone.parameters(), stacked[0].parameters()))


def forward_flops(case: Case) -> int:
    """Matmul and convolution FLOPs (2 per multiply-add) of one sample's forward pass through
    one of the case's models, counted by torch's ``FlopCounterMode`` (pooling, ReLUs and the
    loss are not counted). For a bias-free FCN that is 2 per weight."""
    net = models.build(case.model, input_shape=case.input_shape, num_classes=case.num_classes, width=case.width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *case.input_shape))
    return counter.get_total_flops()


def training_flops(case: Case) -> float:
    """Matmul and convolution FLOPs of the case: a training step is 3 forward passes per
    sample (the forward, and the backward's two products per layer: the gradient of the
    input and that of the weight), the final evaluation 1 per training sample. The first
    layer's input gradient, which neither path computes, is counted too (at most 1/3 of the
    first layer's share, and the same for both paths)."""
    return case.models * forward_flops(case) * (3 * 100 * case.steps + case.n_train)


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
        stacked.step(weights, x, y, scale, None, True)
    with _without_fd2():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                stacked.step(weights, x, y, scale, None, True)
        events = prof.key_averages(group_by_input_shape=True)
    times = {"wide": 0.0, "thin": 0.0, "other": 0.0}
    for event in events:
        wide = any(list(shape[1:]) == [width, width] for shape in event.input_shapes if len(shape) == 3)
        kind = "other" if "bmm" not in event.key else "wide" if wide else "thin"
        times[kind] += event.self_cpu_time_total / 1e6
    total = sum(times.values())
    wide_flops = 3 * 2 * models * 100 * width * width * steps
    return {**{k: t / total for k, t in times.items()}, "wide_rate": wide_flops / times["wide"]}


def hot_product_rate(models: int = 24, width: int = 200, repeats: int = 20,
                     device: torch.device | str = "cpu") -> float:
    """FLOP/s of the wide layer's forward product, (models, 100, width) x (models, width, width),
    repeated on the same operands so that they stay in cache (best of 5 rounds)."""
    device = torch.device(device)
    a, w = torch.randn(models, 100, width, device=device), torch.randn(models, width, width, device=device)
    out = torch.empty(models, 100, width, device=device)
    torch.bmm(a, w.transpose(1, 2), out=out)
    best = math.inf
    for _ in range(5):
        start = _now(device)
        for _ in range(repeats):
            torch.bmm(a, w.transpose(1, 2), out=out)
        best = min(best, (_now(device) - start) / repeats)
    return 2 * models * 100 * width * width / best


def time_data_path(n: int, input_shape: tuple[int, ...], batch_size: int = 100, repeats: int = 3,
                   device: torch.device | str = "cpu") -> tuple[float, float]:
    """Seconds per epoch to fetch every minibatch of ``n`` samples held on ``device``: lrsc's
    path (one permutation, then index the device tensors) and a DataLoader over a TensorDataset."""
    device = torch.device(device)
    x, y = torch.randn(n, *input_shape, device=device), torch.randint(2, (n,), device=device)
    g = torch.Generator(device=device).manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))  # a DataLoader shuffles on the CPU

    def ours():
        perm = torch.randperm(n, generator=g, device=device)
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
            start = _now(device)
            fetch()
            best = min(best, _now(device) - start)
        times.append(best)
    return times[0], times[1]


def run(quick: bool = False, threads: int | None = None, repeats: int = 3,
        training_cases: list[Case] | None = None, device: torch.device | str = "cpu") -> tuple[list[dict], dict]:
    """Run every benchmark on ``device`` at ``threads`` threads (default: torch's), each
    training case (default: ``cases(quick)``) ``repeats`` times; returns the table's rows and
    a summary with the headline ratios. The profiled step breakdown runs on the CPU only."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = torch.device(device)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads or threads_before)
    peak = matmul_flops(device=device)
    training_cases = training_cases or cases(quick)
    time_training(Case("warm-up", 2, 5, (16,), 200, 2, 500), repeats=1, device=device)
    for case in training_cases:  # the first convolution of each shape sets up its kernels
        if case.model != "fcn":
            time_training(replace(case, steps=2), repeats=1, device=device)
    timed = [(case, *time_training(case, repeats, device)) for case in training_cases]
    cnns = sorted({c.width: c for c in training_cases if c.model == "cnn"}.values(), key=lambda c: c.width)
    layouts = [(case, *time_channels_last(case, repeats, device)) for case in cnns]
    drift = {}
    if cnns:  # does a model's result depend on which others share its stack? the narrowest CNN, a parity FCN
        drift_steps = 2 * cnns[0].steps
        drift = {"cnn": batch_mate_difference(cnns[0], drift_steps, device),
                 "fcn": batch_mate_difference(Case("parity", 4, 0, (16,), 200, 2, 1000), drift_steps, device)}
    parity = [c for c in training_cases if c.input_shape == (16,)]
    if parity:
        largest = max(parity, key=lambda c: c.models)
        if device.type == "cpu":
            breakdown = step_profile(largest.models, width=largest.width)
        hot = hot_product_rate(largest.models, largest.width, device=device)
    peak = max(peak, matmul_flops(device=device))  # the faster of before and after: load from elsewhere only slows it
    rows, summary = [], {"device": str(device), "threads": torch.get_num_threads(), "matmul_gflops": peak / 1e9,
                         "repeats": repeats}
    if parity:
        summary["hot_product_of_peak"] = hot / peak
        if device.type == "cpu":
            summary.update({f"step_share_{k}": breakdown[k] for k in ("wide", "thin", "other")},
                           wide_products_of_peak=breakdown["wide_rate"] / peak)
    for case, seq, bat, ratios in timed:
        flops = training_flops(case)
        rows.append({"benchmark": f"{case.name}, M={case.models}, {case.steps} steps",
                     "baseline (s)": seq, "lrsc (s)": bat, "speedup": seq / bat,
                     "speedup min": min(ratios), "speedup max": max(ratios),
                     "lrsc GFLOP/s": flops / bat / 1e9, "of matmul peak": flops / bat / peak,
                     "baseline of peak": flops / seq / peak})
        if case.input_shape == (16,) and case.sgd:
            summary[f"batched_speedup_parity_m{case.models}_sgd_settings"] = seq / bat
        elif case.input_shape == (16,):
            summary[f"batched_speedup_parity_m{case.models}"] = seq / bat
            if case.models == 24:
                summary["flops_fraction"] = flops / bat / peak
                summary["sequential_flops_fraction"] = flops / seq / peak
                # the speedup if the batched matmuls ran at the dense-matmul rate and nothing else took time
                summary["speedup_at_matmul_peak_parity_m24"] = seq / (flops / peak)
        if case.model == "cnn":
            summary[f"batched_speedup_{case.tag}"] = seq / bat
            if case.width == cnns[0].width and "cnn_flops_fraction" not in summary:
                # the narrowest CNN trained one at a time, as the sweep trains conv nets
                summary["cnn_flops_fraction"] = flops / seq / peak
                summary["cnn_flops_width"] = case.width
    for case, plain, last, ratios in layouts:
        flops = training_flops(replace(case, models=1, steps=1, n_train=0))  # one model's step
        rows.append({"benchmark": f"CNN width {case.width:g}, one model, time per step of {case.steps}: "
                                  "contiguous (baseline) vs channels_last",
                     "baseline (s)": plain, "lrsc (s)": last, "speedup": plain / last,
                     "speedup min": min(ratios), "speedup max": max(ratios),
                     "lrsc GFLOP/s": flops / last / 1e9, "of matmul peak": flops / last / peak,
                     "baseline of peak": flops / plain / peak})
        summary[f"channels_last_speedup_cnn_w{case.width:g}".replace(".", "")] = plain / last
    if drift:
        summary.update({f"batch_mate_weight_diff_{k}": v for k, v in drift.items()}, batch_mate_steps=drift_steps)
    for label, shape, n in (("parity", (16,), 10000), ("Colored-MNIST size", (3, 28, 28), 10000)):
        ours, theirs = time_data_path(n, shape, device=device)
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


def device_problem(name: str) -> str:
    """Why ``name`` cannot hold this process's tensors (``""`` when it can), in one sentence."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        return _first_sentence(error)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available here (no GPU, no driver, or a CPU-only build of torch)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"there are only {torch.cuda.device_count()} CUDA device(s)"
    try:
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as error:
        return _first_sentence(error)
    return ""


def _first_sentence(error: Exception) -> str:
    return str(error).strip().splitlines()[0].split(". ")[0].rstrip(".")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (about 45 s on 2 cores)")
    parser.add_argument("--threads", type=int, help="torch threads for every benchmark (default: torch's, all cores)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per training case; medians are reported (default 3)")
    parser.add_argument("--device", default="cpu",
                        help="where every tensor and model lives: cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and the headline ratios as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    problem = device_problem(args.device)
    if problem:
        parser.error(f"--device {args.device}: {problem}")
    start = time.time()
    rows, summary = run(quick=args.quick, threads=args.threads, repeats=args.repeats, device=args.device)
    print(format_table(rows))
    print(f"medians of {summary['repeats']} rounds; {summary['device']}, {summary['threads']} thread(s); "
          f"dense matmul (2000x2000 float32): {summary['matmul_gflops']:.0f} GFLOP/s")
    if "step_share_wide" in summary:
        print(f"batched parity step, profiled: width x width products {summary['step_share_wide']:.0%} of the time "
              f"at {summary['wide_products_of_peak']:.0%} of dense peak ({summary['hot_product_of_peak']:.0%} with "
              f"operands in cache); thin products {summary['step_share_thin']:.0%}; other ops {summary['step_share_other']:.0%}")
    if "cnn_flops_fraction" in summary:
        print(f"CNN width {summary['cnn_flops_width']:g} trained alone: {summary['cnn_flops_fraction']:.0%} of dense peak")
    if "batch_mate_weight_diff_cnn" in summary:
        print(f"largest weight difference, alone vs in a stack of 4, after {summary['batch_mate_steps']} steps: "
              f"CNN {summary['batch_mate_weight_diff_cnn']:.1e}, bias-free FCN {summary['batch_mate_weight_diff_fcn']:.1e}")
    if "speedup_at_matmul_peak_parity_m24" in summary:
        print(f"ceiling for batched parity M=24 at dense peak: {summary['speedup_at_matmul_peak_parity_m24']:.1f}x")
    print(f"total {time.time() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
