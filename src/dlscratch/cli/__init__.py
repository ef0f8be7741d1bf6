"""The ``dlscratch`` command: a thin layer over the public API.

Each subcommand lives in its own module here and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed arguments and
returning an exit status).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand modules, in the order ``dlscratch --help`` lists them.
SUBCOMMANDS = (
    "train",
    "search",
    "evaluate",
    "predict",
    "infer",
    "data",
    "experiment",
    "bench",
    "verify",
)


def build_parser() -> argparse.ArgumentParser:
    from dlscratch import __version__

    parser = argparse.ArgumentParser(
        prog="dlscratch",
        description="Deep learning from scratch on NumPy: train, evaluate and explore networks.",
    )
    parser.add_argument("--version", action="version", version=f"dlscratch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"dlscratch.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (``dlscratch verify | head``): stop quietly, as Unix tools do.
        try:  # point stdout at /dev/null, so that the flush at exit cannot fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a real file (tests, notebooks)
            pass
        return 141  # 128 + SIGPIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:
        # Library errors carry a message that says what was wrong and how to fix it;
        # show it without a traceback (set DLSCRATCH_DEBUG=1 to see one).
        if os.environ.get("DLSCRATCH_DEBUG"):
            raise
        print(f"dlscratch {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, TypeError)) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
