"""``dlscratch experiment``: rerun the book's experiments, write figures, numbers and a report.

Usage::

    dlscratch experiment --list
    dlscratch experiment NAME [NAME ...] [--quick] [--seed S] [--out DIR]
    dlscratch experiment all --out report/      # every experiment + report/index.html

Each run writes ``DIR/NAME/`` (PNG + SVG figure, CSV series, ``result.json``)
and refreshes ``DIR/index.html``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from dlscratch.cli.options import non_negative_int


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``experiment`` subcommand to ``subparsers``."""
    from dlscratch.experiments.base import DEFAULT_OUT

    parser = subparsers.add_parser(
        "experiment",
        help="rerun the book's experiments: figures, CSV, numbers beside the book's, HTML report",
        description="Rerun an experiment of the book (or 'all'), writing its figure (PNG and "
        "SVG), raw series (CSV) and result.json into OUT/NAME/, printing our numbers beside "
        "the book's, and refreshing OUT/index.html.",
        epilog="examples: dlscratch experiment --list; dlscratch experiment optimizers-2d; "
        "dlscratch experiment all --quick --out report/",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="experiment name(s) from --list, or 'all'"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (seconds per experiment) instead of the book's",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding the four MNIST files (default: $DLSCRATCH_DATA, "
        "the user cache)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="the book's sample_weight.pkl for 'inference' (default: "
        "$DLSCRATCH_WEIGHTS, then weights/ beside $DLSCRATCH_DATA)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write OUT/index.html")
    parser.set_defaults(func=run, experiment_parser=parser)
    return parser


def _list() -> int:
    from dlscratch.experiments import EXPERIMENTS

    width = max(len(n) for n in EXPERIMENTS)
    for name, spec in EXPERIMENTS.items():
        needs = " [MNIST]" if spec.needs_mnist else ""
        print(f"{name:<{width}}  {spec.summary}{needs}")
    return 0


def run(args) -> int:
    from dlscratch.experiments import EXPERIMENTS, build_report, run_experiment

    parser = args.experiment_parser
    if args.list:
        return _list()
    if not args.names:
        parser.error("name an experiment (see --list) or 'all'")
    names = list(EXPERIMENTS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(
            f"unknown experiment(s) {', '.join(unknown)}; choose from: "
            f"{', '.join(EXPERIMENTS)} or 'all'"
        )
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder")

    keep_going = len(names) > 1
    failures = {}
    for name in names:
        try:
            run_experiment(
                name,
                args.out,
                quick=args.quick,
                seed=args.seed,
                data_dir=args.data_dir,
                weights=args.weights,
            )
        except Exception as exc:  # noqa: BLE001 - one failure must not stop 'all'
            if not keep_going:
                raise
            failures[name] = f"{type(exc).__name__}: {exc}"
            print(f"== {name}: FAILED: {exc}", file=sys.stderr)
            if os.environ.get("DLSCRATCH_DEBUG"):
                traceback.print_exc()
    if not args.no_report:
        page = build_report(args.out, failures)
        print(f"report: {page}")
    if failures:
        print(
            f"{len(failures)} of {len(names)} experiments failed: {', '.join(failures)}",
            file=sys.stderr,
        )
        return 1
    return 0
