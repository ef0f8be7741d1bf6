"""``dlscratch infer``: test-set accuracy and throughput of trained weights (section 3.6).

::

    dlscratch infer --weights sample_weight.pkl                 # batched, 100 images a batch
    dlscratch infer --weights sample_weight.pkl --batch-size 1  # the book's one-image loop
    dlscratch infer --weights runs/exp1 --compare               # both, side by side

``--weights`` takes one of the book's pickles (read safely, without running
code): ``sample_weight.pkl`` (chapter 3), the chapter 7 SimpleConvNet
``params.pkl`` or the chapter 8 ``deep_convnet_params.pkl``, recognised by
their arrays' names and shapes (:func:`dlscratch.book_weights.load_book_network`);
or one of our ``.npz`` model files, or a run directory holding ``model.npz``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlscratch.cli.options import add_dataset_options, positive_int


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``infer`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "infer",
        help="test accuracy and images/s of saved weights (the book's sample_weight.pkl too)",
        description="Classify the test set with saved weights and print the accuracy and the "
        "throughput. --batch-size 1 runs the book's one-image-at-a-time loop; --compare runs "
        "that loop and batched inference and prints both.",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="one of the book's .pkl files (sample_weight.pkl, the CNNs' params), a dlscratch "
        ".npz model file, or a run directory with model.npz "
        "(default: the book's sample_weight.pkl from $DLSCRATCH_WEIGHTS, beside "
        "$DLSCRATCH_DATA)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=100,
        help="images per forward pass (default 100; 1 = the book's single-image loop)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run both the single-image loop and batched inference (at --batch-size, "
        "or 100 when that is 1) and print both",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="time each pass this many times and report the fastest (default 3)",
    )
    add_dataset_options(parser)
    parser.set_defaults(func=run)
    return parser


@dataclass
class InferenceResult:
    """One pass over the test set."""

    mode: str
    batch_size: int
    correct: int
    total: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    @property
    def images_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else float("inf")


def count_correct(net, x, t, batch_size: int, repeat: int = 1) -> InferenceResult:
    """Classify ``x`` (N, D) ``batch_size`` images at a time; count matches with labels ``t`` (N,).

    ``batch_size=1`` is the book's loop: one image per forward pass. The
    predicted class is the arg-max of the softmax output, as in the book.
    The pass runs ``repeat`` times; the fastest time is kept.
    """
    n = x.shape[0]
    if n == 0:
        raise ValueError("the test set is empty")
    t = np.asarray(t)
    if t.ndim != 1:
        t = t.argmax(axis=1)
    net.predict_proba(x[:batch_size])  # warm-up: first-call costs stay out of the timing
    best = float("inf")
    for _ in range(repeat):
        correct = 0
        start = time.perf_counter()
        if batch_size == 1:
            for i in range(n):
                y = net.predict_proba(x[i : i + 1])
                if int(np.argmax(y)) == int(t[i]):
                    correct += 1
        else:
            for lo in range(0, n, batch_size):
                y = net.predict_proba(x[lo : lo + batch_size])
                correct += int((np.argmax(y, axis=1) == t[lo : lo + batch_size]).sum())
        best = min(best, time.perf_counter() - start)
    mode = "single" if batch_size == 1 else "batched"
    return InferenceResult(mode, batch_size, correct, n, best)


def format_table(results) -> str:
    """A small aligned table of :class:`InferenceResult` rows."""
    header = ("mode", "batch", "correct", "accuracy", "time (s)", "images/s")
    rows = [
        (
            r.mode,
            str(r.batch_size),
            f"{r.correct}/{r.total}",
            f"{r.accuracy:.4f}",
            f"{r.seconds:.3f}",
            f"{r.images_per_second:,.0f}",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths))
        )
        for cells in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _describe(net) -> str:
    if hasattr(net, "describe"):  # the convolutional networks
        extras = [np.dtype(net.dtype).name]
        if getattr(net, "dropout_scale", None) == "book":
            extras.append("book dropout: x (1 - ratio) at test time")
        return f"{type(net).__name__}: {net.describe()} ({', '.join(extras)})"
    sizes = [net.input_size, *getattr(net, "hidden_size_list", []), net.output_size]
    extras = [getattr(net, "activation", "?"), np.dtype(net.dtype).name]
    if getattr(net, "use_batchnorm", False):
        extras.append("batchnorm")
    if getattr(net, "use_dropout", False):
        extras.append("dropout")
    return f"{type(net).__name__} {'-'.join(map(str, sizes))} ({', '.join(extras)})"


def run(args) -> int:
    from dlscratch.book_weights import load_book_network
    from dlscratch.data import load_mnist
    from dlscratch.io import find_book_weights, load_model

    if args.weights is None:
        args.weights = find_book_weights()
    if args.weights.suffix.lower() in (".pkl", ".pickle"):
        net = load_book_network(args.weights)
    else:
        net = load_model(args.weights)
    _, (x_test, t_test) = load_mnist(
        normalize=True, flatten=True, dataset=args.dataset, data_dir=args.data_dir
    )
    sizes = [args.batch_size]
    if args.compare:
        sizes = [1, args.batch_size if args.batch_size > 1 else 100]
    results = [count_correct(net, x_test, t_test, b, repeat=args.repeat) for b in sizes]

    print(f"weights: {args.weights}")
    print(f"network: {_describe(net)}")
    print(f"data:    {args.dataset} test set, {x_test.shape[0]} images")
    print(f"timing:  fastest of {args.repeat} pass(es), after one warm-up batch")
    print()
    print(format_table(results))
    if len({r.correct for r in results}) > 1:
        print("\nnote: single-image and batched inference disagree (float rounding on a tie?)")
    return 0
