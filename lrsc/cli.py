"""Command line: ``lrsc sweep``, ``lrsc status``, ``lrsc collect``, ``lrsc book`` and ``lrsc plan``.

Bad input (unknown key, wrong type, out-of-range value, unknown name, a data root without
its data) prints one line ``lrsc: error: ...`` and exits with status 2, before anything is
written. A sweep some of whose runs raised writes its results, then prints one line naming
the first failure and exits with status 1.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from lrsc.errors import LrscError
from lrsc.progress import notices_to_stderr

if TYPE_CHECKING:  # lrsc.engines imports torch: the commands that need it import it when they run
    from lrsc.engines import Choice


def _choice(args: argparse.Namespace) -> Choice:
    """The engine options of the command line (see :func:`_engine_options`) as a :class:`lrsc.engines.Choice`."""
    from lrsc.engines import Choice, SlurmOptions

    slurm = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time, gpus=args.slurm_gpus,
                         cpus=args.slurm_cpus, mem_gb=args.slurm_mem, folder=args.slurm_folder)
    return Choice(engine=args.engine, workers=args.workers, retries=args.retries, scheduler=args.scheduler,
                  device=args.device, slurm=slurm)


def _sweep(args: argparse.Namespace) -> None:
    from lrsc.sweep import MODELS_AT_ONCE, run_sweep

    results = run_sweep(args.params, args.out, overrides=args.set,
                        models_at_once=1 if args.no_batch else MODELS_AT_ONCE, store=args.store,
                        plugins=args.imports, **_choice(args).sweep_options())
    print(f"wrote {args.out}/results.nc: {dict(results.sizes)} "
          f"({int(results.converged.sum())} converged, {int(results.diverged.sum())} diverged)")


def _status(args: argparse.Namespace) -> int:
    from lrsc import store, sweepdir

    grid = sweepdir.read_grid(args.dir)
    if args.quick:
        rows, note = sweepdir.states(args.dir), "outdated runs not looked for (--quick)"
    else:
        from lrsc.sweep import status as planned  # plans the sweep with the current code: imports torch

        rows, note = planned(args.dir)
    print(f"{args.dir}: {len(rows)} runs in the run store {grid['store']}" + (f"; {note}" if note else ""))
    for status in store.STATUSES:
        print(f"  {status:<9}{sum(state.status == status for _, _, state in rows):>7}")
    for status, header in (("running", "runs claimed by a live process (hash, grid point, owner):"),
                           ("stale", "runs claimed by a process that is gone (the next sweep takes them over):"),
                           ("failed", "failed runs (hash, grid point, last line of the traceback; the whole one is in "
                                      "the run's .json record):"),
                           ("outdated", "outdated runs (hash, grid point, why; the next sweep trains them again or "
                                        "recomputes the variable):"),
                           ("damaged", "damaged runs (the next sweep or lrsc collect sets them aside):")):
        chosen = [(point, h, state) for point, h, state in rows if state.status == status]
        if chosen:
            print(header)
        for point, h, state in chosen:
            where = " ".join(f"{dim}={value}" for dim, value in point.items())
            detail = {"failed": sweepdir.last_line(state.record.get("error", "")), "damaged": state.problem,
                      "outdated": state.problem}.get(status, _owner(state.owner, state.problem))
            print(f"  {h}  {where}  {detail}")
    return 1 if any(state.status in ("failed", "damaged") for _, _, state in rows) else 0


def _owner(owner: dict | None, problem: str) -> str:
    import time

    if not owner:
        return problem or "owner not written yet"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"host {owner.get('host')} pid {owner.get('pid')} since {started} ({owner.get('sweep') or 'a sweep'})"


def _collect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lrsc import collect, sweepdir

    results = collect.collect(args.dir, progress=True)
    sweepdir.write_results(Path(args.dir), results, collect.provenance(args.dir))
    print(f"wrote {args.dir}/results.nc: {dict(results.sizes)}")
    return 1 if (results.status == "damaged").any() else 0


def _book(args: argparse.Namespace) -> None:
    from lrsc.book import build_book
    from lrsc.config import parse_override

    overrides = dict(parse_override(o) for o in args.set)
    build_book(args.root, profile=args.profile, execute=not args.no_execute, only=args.only, overrides=overrides,
               jobs=args.jobs, engine=_choice(args))


def _plan(args: argparse.Namespace) -> None:
    from lrsc.estimate import plan_profile, report

    planned = plan_profile(args.root, args.profile, device=args.device, steps=0 if args.no_time else args.time_steps)
    print(report(planned, tflops=args.tflops, every_run=args.runs))


def _engine_options(p: argparse.ArgumentParser, workers: str) -> None:
    """The options that choose where sweeps train (an :class:`lrsc.engines.Choice`), for ``p``."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--engine", default="local",
                   help="local: worker processes on this machine; dask: a Dask cluster; slurm: SLURM job arrays")
    p.add_argument("--workers", type=int, default=1, help=workers)
    p.add_argument("--retries", type=int, default=2,
                   help="resubmissions of a unit whose worker died or was preempted (a run that raises is not retried)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask: address of a running scheduler, e.g. tcp://node1:8786")
    p.add_argument("--slurm-partition", help="slurm: partition (default: the cluster's)")
    # each --slurm-* resource overrides the sweep file's `resources`, which overrides its model's defaults
    p.add_argument("--slurm-time", type=int, metavar="MINUTES",
                   help="slurm: time limit of one job (default: the sweep's resources.time_min, else its model's)")
    p.add_argument("--slurm-gpus", type=int, help="slurm: GPUs per job (default: the sweep's, else its model's)")
    p.add_argument("--slurm-cpus", type=int, help="slurm: CPU cores per job (default: the sweep's, else its model's)")
    p.add_argument("--slurm-mem", type=float, metavar="GB",
                   help="slurm: memory per job (default: the sweep's, else its model's, else the partition's)")
    p.add_argument("--slurm-folder", help="slurm: submitit's logs, on a shared filesystem (default: OUT/slurm of "
                                          "each sweep)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrsc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sweep", help="run or resume a sweep from a params YAML")
    p.add_argument("params", help="sweep config, e.g. params/quick/parity.yaml")
    p.add_argument("--out", required=True, help="the sweep's folder (its config and results.nc go here)")
    p.add_argument("--store", help="the run store (default: runs/ beside --out, shared by every sweep there)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=2000 --set grid.lr=[0.1,1.0]")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="a module (from the current folder or the Python path) or .py file that registers datasets, "
                        "models or metrics, imported before the sweep is planned and kept in its sweep.yaml; "
                        "repeatable")
    p.add_argument("--no-batch", action="store_true",
                   help="train runs one at a time (by default, runs that differ only in lr and seed train together)")
    _engine_options(p, "local: worker processes (1: in this process); dask: workers of a new LocalCluster")
    p.set_defaults(func=_sweep)
    for name, func, text in (("status", _status, "count a sweep's runs by status; list claims, failures, outdated "
                                                 "runs and damage"),
                             ("collect", _collect, "rebuild DIR/results.nc from the run store")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="the sweep's --out folder")
        p.set_defaults(func=func)
    sub.choices["status"].add_argument("--quick", action="store_true", help="read the store only, without importing "
                                       "torch or planning the sweep: outdated runs are not looked for")
    p = sub.add_parser("book", help="execute every chapter with papermill, then build the HTML book")
    p.add_argument("--profile", default="quick", help="parameter set under params/<profile>/ (quick or full)")
    p.add_argument("--root", default=".", help="project root holding _toc.yml (default: current folder)")
    p.add_argument("--no-execute", action="store_true", help="build from the already executed notebooks")
    p.add_argument("--only", action="append", metavar="CHAPTER",
                   help="execute only this chapter (e.g. fig3_parity; repeatable), then rebuild the book")
    p.add_argument("--jobs", type=int, help="chapters executed at once, each on its share of the cores (default: 2 "
                                             "where there are two cores or more)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --only: override a setting of every sweep the chapter runs, e.g. --set grid.lr=[0.1,0.5]")
    _engine_options(p, "local: worker processes of each chapter's sweeps (1: in its kernel); dask: workers of one "
                       "LocalCluster for the whole build")
    p.set_defaults(func=_book)
    p = sub.add_parser("plan", help="list the runs a book profile needs, how many are stored, and their time on this "
                                    "device, before anything trains")
    p.add_argument("--profile", default="quick", help="parameter set under params/<profile>/ (quick or full)")
    p.add_argument("--root", default=".", help="project root holding _toc.yml (default: current folder)")
    p.add_argument("--device", default="auto", help="the device timed: auto (CUDA when present), cpu, cuda, ...")
    p.add_argument("--time-steps", type=int, default=3, metavar="N",
                   help="training steps timed per model and input size, after one that is not timed")
    p.add_argument("--no-time", action="store_true", help="count runs and steps only: build no model, read no data")
    p.add_argument("--tflops", type=float, metavar="X",
                   help="also give the hours at X TFLOP/s sustained (another device, e.g. a cluster's GPUs)")
    p.add_argument("--runs", action="store_true", help="list every run (hash, chapter, sweep, grid point, step cap)")
    p.set_defaults(func=_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv``; returns the exit status (an error's ``exit_code``, see
    :mod:`lrsc.errors`: 2 for bad input, 1 for failed runs or chapters; 130 when interrupted)."""
    args = _parser().parse_args(argv)
    notices_to_stderr()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # SIGTERM stops a sweep as Ctrl-C does
    try:
        code = args.func(args)
    except LrscError as e:
        print(f"lrsc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lrsc: error: interrupted; run the same command again to resume (finished runs are kept)",
              file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return code or 0


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
