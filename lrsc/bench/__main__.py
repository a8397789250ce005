"""``python -m lrsc.bench``: run every benchmark, print the table and the headline ratios."""
from __future__ import annotations

import argparse
import json
import time

import torch

from lrsc.bench import runner


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lrsc.bench",
                                     description="How fast lrsc trains: batched vs one-at-a-time training, achieved "
                                                 "FLOP/s, the data path, the one-model loop's overhead.")
    parser.add_argument("--quick", action="store_true", help="fewer training steps (the book's quick profile)")
    parser.add_argument("--threads", type=int, help="torch threads for every benchmark (default: torch's, all cores)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per training case; medians are reported (default 3)")
    parser.add_argument("--device", default="cpu",
                        help="where every tensor and model lives: cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and the headline ratios as JSON")
    return parser


def _print_summary(s: dict, seconds: float) -> None:
    print(f"medians of {s['repeats']} rounds; {s['device']}, {s['threads']} thread(s); "
          f"dense matmul (2000x2000 float32): {s['matmul_gflops']:.0f} GFLOP/s")
    if "step_share_wide" in s:
        print(f"batched parity step, profiled: width x width products {s['step_share_wide']:.0%} of the time "
              f"at {s['wide_products_of_peak']:.0%} of dense peak ({s['hot_product_of_peak']:.0%} with "
              f"operands in cache); thin products {s['step_share_thin']:.0%}; other ops {s['step_share_other']:.0%}")
    if "cnn_flops_fraction" in s:
        print(f"CNN width {s['cnn_flops_width']:g} trained alone: {s['cnn_flops_fraction']:.0%} of dense peak")
    diffs = [f"{k} {s[f'batch_mate_weight_diff_{k}']:.1e}" for k in ("cnn", "fcn")
             if f"batch_mate_weight_diff_{k}" in s]
    print(f"largest weight difference, alone vs in a stack of 4, after {s['batch_mate_steps']} steps: "
          + ", ".join(diffs))
    if "speedup_at_matmul_peak_parity_m24" in s:
        print(f"ceiling for batched parity M=24 at dense peak: {s['speedup_at_matmul_peak_parity_m24']:.1f}x")
    print(f"one model's training time over a plain torch loop's ({s['one_model_layers']}, {s['one_model_steps']} "
          f"steps): {s['one_model_overhead']:.2f}x with a bias (lrsc.train's loop), "
          f"{s['one_model_overhead_fcn']:.2f}x bias-free (the stacked kernel)")
    print(f"total {seconds:.0f} s")


def main(argv: list[str] | None = None) -> None:
    """The command line; exits with status 2 (argparse's) on bad ``--repeats`` or ``--device``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    problem = device_problem(args.device)
    if problem:
        parser.error(f"--device {args.device}: {problem}")
    start = time.time()
    rows, summary = runner.run(quick=args.quick, threads=args.threads, repeats=args.repeats, device=args.device)
    print(runner.format_table(rows))
    _print_summary(summary, time.time() - start)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
