"""Command line: ``lrsc sweep`` and ``lrsc book``.

Bad input (unknown key, wrong type, out-of-range value, unknown name) prints one line
``lrsc: error: ...`` and exits with status 2, before anything is written.
"""
from __future__ import annotations

import argparse
import sys

from lrsc.errors import ConfigError


def _sweep(args: argparse.Namespace) -> None:
    from lrsc.sweep import MODELS_AT_ONCE, run_sweep

    results = run_sweep(args.params, args.out, overrides=args.set, device=args.device,
                        models_at_once=1 if args.no_batch else MODELS_AT_ONCE)
    print(f"wrote {args.out}/results.nc: {dict(results.sizes)} "
          f"({int(results.converged.sum())} converged, {int(results.diverged.sum())} diverged)")


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
    p.set_defaults(func=_sweep)

    p = sub.add_parser("book", help="execute every chapter with papermill, then build the HTML book")
    p.add_argument("--profile", default="quick", help="parameter set under params/<profile>/ (quick or full)")
    p.add_argument("--root", default=".", help="project root holding _toc.yml (default: current folder)")
    p.add_argument("--no-execute", action="store_true", help="build from the already executed notebooks")
    p.set_defaults(func=_book)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConfigError as e:
        print(f"lrsc: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
