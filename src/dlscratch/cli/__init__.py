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
    "runs",
    "infer",
    "data",
    "experiment",
    "bench",
    "verify",
    "serve",
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
        command = sub.choices[name]
        if name in COMPUTING and not _has_option(command, "--threads"):
            add_threads_option(command)
    return parser


#: Commands that compute with NumPy's BLAS, and so take ``--threads`` (and DLSCRATCH_THREADS).
COMPUTING = ("train", "search", "evaluate", "predict", "infer", "experiment", "bench", "serve")


def _has_option(parser, flag: str) -> bool:
    return any(flag in action.option_strings for action in parser._actions)


def add_threads_option(parser) -> None:
    from dlscratch.backend import THREADS_ENV
    from dlscratch.cli.options import positive_int

    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"BLAS threads (default: ${THREADS_ENV}, else 1: on two cores one thread is "
        "faster for these small matrices, and much faster on a busy machine)",
    )


def _set_threads(args) -> None:
    """Cap the BLAS threads at ``--threads``, else ``$DLSCRATCH_THREADS``, else the default."""
    from dlscratch.backend import default_threads, set_num_threads

    threads = getattr(args, "threads", None)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"--threads must be a whole number >= 1, got {threads!r}")
    set_num_threads(threads if threads is not None else default_threads())
    from dlscratch import kernels

    kernels.enabled()  # $DLSCRATCH_KERNELS checked here, before any work

#: Errors of the libraries dlscratch reads files with, meaning "this input is damaged".
_INPUT_ERRORS = (ValueError, TypeError, RecursionError, OverflowError, EOFError)
#: OSErrors that are about the input named (exit 2), not about the machine (exit 1).
_BAD_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError)


def main(argv: list[str] | None = None) -> int:
    """Run the ``dlscratch`` command; return its exit status.

    The one error boundary of the command line: every expected failure becomes
    one line ``dlscratch COMMAND: error: ...`` naming the input and what to do,
    with exit status 2 for bad input or options and 1 for the environment (disk
    full, permission denied, out of memory). Anything else is a bug in dlscratch
    and is reported as one (``DLSCRATCH_DEBUG=1`` shows the traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from dlscratch.cli.options import release_output_folders

    try:
        _set_threads(args)
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
    except Exception as exc:  # noqa: BLE001 - the boundary: every error ends here
        if os.environ.get("DLSCRATCH_DEBUG"):
            raise
        message, status = describe_error(exc)
        print(f"dlscratch {args.command}: {message}", file=sys.stderr)
        return status
    finally:
        release_output_folders()


def describe_error(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit status)`` for an exception that reached the command line."""
    import pickle
    import zipfile
    import zlib

    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return (
            f"error: not enough memory ({text}); the input or options ask for more than this "
            "machine has: use smaller layers, batches or data, or a file that is not damaged",
            1,
        )
    if isinstance(exc, RecursionError):
        return f"error: the input is nested too deeply to read ({text})", 2
    if isinstance(exc, OverflowError):
        return f"error: a number in the input or options is too large ({text})", 2
    if isinstance(exc, _INPUT_ERRORS + (zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)):
        return f"error: {text}", 2
    if isinstance(exc, _BAD_PATH_ERRORS):
        return f"error: {text}", 2
    if isinstance(exc, OSError):
        return f"error: {text} (a problem of this machine: free some space, check permissions)", 1
    return (
        f"internal error: {type(exc).__name__}: {text}. This is a bug in dlscratch; please "
        "report it to the project's issue tracker with the command you ran and the traceback "
        "(run it again with DLSCRATCH_DEBUG=1 to see it)",
        1,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
