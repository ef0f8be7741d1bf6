"""What the subcommands share on their command lines: argument types and common options.

Each argument type returns the parsed value or raises ``argparse.ArgumentTypeError``
with a message that says what is valid; argparse turns it into ``usage: ...`` plus the
message, and exit status 2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from dlscratch.data.mnist import DATASETS


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer (>= 1)")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def number(text: str) -> float:
    """Any finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (e.g. 0.001), got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    """A fraction in [0, 1)."""
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 (inclusive) to 1, got {text}")
    return value


def log_range(text: str):
    """``LOW:HIGH`` with ``0 < LOW < HIGH`` -> :class:`dlscratch.hpo.LogUniform` (searched on a
    log scale); a single number >= 0 -> that fixed float."""
    from dlscratch.hpo import LogUniform

    example = "such as 1e-6:1e-2 (searched on a log scale) or a single fixed value"
    if ":" not in text:
        try:
            value = number(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected a range LOW:HIGH {example}, got {text!r}"
            ) from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"a fixed value must be >= 0, got {text}")
        return value
    low_text, _, high_text = text.partition(":")
    try:
        low, high = number(low_text), number(high_text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid range {text!r}: expected two numbers LOW:HIGH {example}"
        ) from None
    if low <= 0 or high <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid range {text!r}: both bounds must be > 0 on a log scale, e.g. 1e-6:1e-2"
        )
    if low >= high:
        raise argparse.ArgumentTypeError(
            f"invalid range {text!r}: LOW must be smaller than HIGH, e.g. {high_text}:{low_text}"
            if low > high
            else f"invalid range {text!r}: LOW must be smaller than HIGH (for one fixed value "
            f"write just {low_text})"
        )
    return LogUniform(low, high)


# -- options used by several subcommands ----------------------------------------------------


def add_dataset_options(parser, *, default: str | None = "mnist", help: str | None = None) -> None:
    """``--dataset`` (mnist or fashion-mnist) and ``--data-dir``."""
    parser.add_argument(
        "--dataset",
        type=str.lower,
        choices=DATASETS,
        default=default,
        help=help or f"{' or '.join(DATASETS)} (default {default})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding the four IDX files (default: $DLSCRATCH_DATA/<dataset>, "
        "then the user cache, then a download)",
    )


def add_model_option(parser) -> None:
    """``--model RUN``: what evaluate and predict classify with."""
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="RUN",
        help="a run folder (with model.npz), a .npz model file, or the book's .pkl weights",
    )


def choose_output_folder(
    out: Path | None, default_name: str, *, overwrite: bool, hint: str = ""
) -> Path:
    """The folder a command will write into, checked now and created later.

    ``out`` None: ``runs/<time>-<default_name>`` (``-2``, ``-3``, ... if taken).
    An existing non-empty folder is refused unless ``overwrite``; ``hint`` is
    added to the refusal (e.g. how to resume). Nothing is created here, so a
    command that fails before its first result leaves no empty folder behind:
    call :func:`claim_output_folder` just before writing.
    """
    if out is None:
        import datetime

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{stamp}-{default_name}"
        base, n = out, 2
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {out} already exists and is not empty; choose another --out, "
            f"{hint}or pass --overwrite to replace its files"
        )
    return out


def claim_output_folder(out: Path, owned_files) -> Path:
    """Create ``out`` and remove the command's ``owned_files`` left by an older run."""
    out.mkdir(parents=True, exist_ok=True)
    for name in owned_files:
        (out / name).unlink(missing_ok=True)
    return out
