"""Command line: ``lrsc sweep``, ``lrsc status``, ``lrsc collect`` and ``lrsc book``.

Bad input (unknown key, wrong type, out-of-range value, unknown name, a data root without
its data) prints one line ``lrsc: error: ...`` and exits with status 2, before anything is
written. A sweep some of whose runs raised writes its results, then prints one line naming
the first failure and exits with status 1.
"""
from __future__ import annotations

import argparse
import sys

from lrsc.errors import ConfigError, RunsFailed


def _sweep(args: argparse.Namespace) -> None:
    from lrsc.engines import SlurmOptions
    from lrsc.sweep import MODELS_AT_ONCE, run_sweep

    slurm = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time, gpus=args.slurm_gpus,
                         cpus=args.slurm_cpus, folder=args.slurm_folder)
    results = run_sweep(args.params, args.out, overrides=args.set, device=args.device,
                        models_at_once=1 if args.no_batch else MODELS_AT_ONCE, engine=args.engine,
                        workers=args.workers, retries=args.retries, scheduler=args.scheduler, slurm=slurm)
    print(f"wrote {args.out}/results.nc: {dict(results.sizes)} "
          f"({int(results.converged.sum())} converged, {int(results.diverged.sum())} diverged)")


def _status(args: argparse.Namespace) -> None:
    from lrsc import store
    from lrsc.config import axis_path, get
    from lrsc.sweep import axes, read_config, run_hash, statuses

    cfg = read_config(args.dir)
    records = statuses(args.dir, cfg)
    print(f"{args.dir}: {len(records)} runs")
    for status in store.STATUSES:
        print(f"  {status:<9}{sum(r['status'] == status for _, r in records):>7}")
    failed = [(run, r) for run, r in records if r["status"] == "failed"]
    if any(r["status"] == "stale" for _, r in records):
        print("stale runs were recorded as running by a process of this host that is gone; "
              "run the sweep again to train them")
    if failed:
        print("failed runs (hash, axis values, last line of the traceback; the whole one is in runs/<hash>.json):")
    axis_of = dict(zip(axes(cfg), cfg["grid"]))  # dim name -> the axis as the grid names it
    for run, record in failed:
        values = " ".join(f"{dim}={get(run, axis_path(axis))}" for dim, axis in axis_of.items())
        print(f"  {run_hash(run)}  {values}  {record['error'].strip().splitlines()[-1]}")


def _collect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lrsc import store
    from lrsc.sweep import collect, expand, read_config, set_aside_damaged

    stored = set_aside_damaged(Path(args.dir), expand(read_config(args.dir)), "run the sweep again to recompute it")
    results = collect(args.dir, check=False)
    store.write_atomic(results, f"{args.dir}/results.nc")
    print(f"wrote {args.dir}/results.nc: {dict(results.sizes)}")
    return 1 if None in stored.values() else 0


def _book(args: argparse.Namespace) -> None:
    from lrsc.book import build_book

    build_book(args.root, profile=args.profile, execute=not args.no_execute)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lrsc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sweep", help="run or resume a sweep from a params YAML")
    p.add_argument("params", help="sweep config, e.g. params/quick/parity.yaml")
    p.add_argument("--out", required=True, help="output folder (runs/ and results.nc go here)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=2000 --set grid.lr=[0.1,1.0]")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--no-batch", action="store_true",
                   help="train runs one at a time (by default, runs that differ only in lr and seed train together)")
    p.add_argument("--engine", default="local",
                   help="local: worker processes on this machine; dask: a Dask cluster; slurm: SLURM job arrays")
    p.add_argument("--workers", type=int, default=1,
                   help="local: worker processes (1: in this process); dask: workers of a new LocalCluster")
    p.add_argument("--retries", type=int, default=2,
                   help="resubmissions of a unit whose worker died or was preempted (a run that raises is not retried)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask: address of a running scheduler, e.g. tcp://node1:8786")
    p.add_argument("--slurm-partition", help="slurm: partition (default: the cluster's)")
    p.add_argument("--slurm-time", type=int, default=60, metavar="MINUTES", help="slurm: time limit of one job")
    p.add_argument("--slurm-gpus", type=int, default=0, help="slurm: GPUs per job")
    p.add_argument("--slurm-cpus", type=int, default=1, help="slurm: CPU cores per job")
    p.add_argument("--slurm-folder", help="slurm: submitit's logs, on a shared filesystem (default: OUT/slurm)")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("status", help="count a sweep's pending, running, done, failed and diverged runs")
    p.add_argument("dir", help="the sweep's --out folder")
    p.set_defaults(func=_status)

    p = sub.add_parser("collect", help="rebuild DIR/results.nc from the stored runs")
    p.add_argument("dir", help="the sweep's --out folder")
    p.set_defaults(func=_collect)

    p = sub.add_parser("book", help="execute every chapter with papermill, then build the HTML book")
    p.add_argument("--profile", default="quick", help="parameter set under params/<profile>/ (quick or full)")
    p.add_argument("--root", default=".", help="project root holding _toc.yml (default: current folder)")
    p.add_argument("--no-execute", action="store_true", help="build from the already executed notebooks")
    p.set_defaults(func=_book)

    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except ConfigError as e:
        print(f"lrsc: error: {e}", file=sys.stderr)
        return 2
    except RunsFailed as e:
        print(f"lrsc: error: {e}", file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
