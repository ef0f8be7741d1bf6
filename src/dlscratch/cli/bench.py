"""``dlscratch bench``: seconds per epoch, memory, inference and loading, beside PyTorch.

::

    dlscratch bench                       # full run, about a minute on 2 cores
    dlscratch bench --quick               # smoke run, seconds
    dlscratch bench --configs b --rounds 9 --json bench.json
    dlscratch bench --device cuda         # CuPy on an NVIDIA GPU (PyTorch on CUDA beside it)

See :mod:`dlscratch.bench` for what is measured and how.
"""

from __future__ import annotations


def register(subparsers) -> None:
    from dlscratch.bench import add_arguments

    parser = subparsers.add_parser(
        "bench",
        help="time training, inference and data loading (beside PyTorch when installed)",
        description="Seconds per training epoch and peak memory of four networks, each in its "
        "own process and interleaved epoch by epoch with the same networks in PyTorch when it "
        "is installed; pretrained-network inference; cached load_mnist; numerical "
        "gradient time. Prints a table; --json writes the figures.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from dlscratch.bench import report

    return report(args)
