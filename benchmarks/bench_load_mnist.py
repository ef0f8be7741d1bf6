"""Time ``load_mnist``: a cold load (parse IDX, build the .npy cache) versus cached loads.

Run directly (``python benchmarks/bench_load_mnist.py [--data-dir DIR]``) or call
:func:`time_load_mnist` from a larger benchmark. The cache goes to a fresh
temporary folder, so the user's cache is neither used nor touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def time_load_mnist(
    data_dir=None, *, dataset: str = "mnist", repeats: int = 5, normalize: bool = True
) -> dict:
    """Seconds for one cold ``load_mnist`` and ``repeats`` cached ones.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder with the IDX files (default: the usual search, e.g. ``$DLSCRATCH_DATA``).
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    repeats : int
        Number of cached loads timed after the cold one.
    normalize : bool
        Passed to ``load_mnist`` (float32 conversion is part of the timed work).

    Returns
    -------
    dict
        ``cold_s``, ``cached_min_s``, ``cached_median_s``, ``repeats``, ``normalize``,
        ``train_shape``.
    """
    from dlscratch.data import load_mnist

    previous = os.environ.get("DLSCRATCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="dlscratch-bench-") as cache:
        os.environ["DLSCRATCH_CACHE"] = cache
        try:
            start = time.perf_counter()
            (x_train, _), _ = load_mnist(normalize=normalize, dataset=dataset, data_dir=data_dir)
            cold = time.perf_counter() - start
            shape = list(x_train.shape)
            del x_train
            cached = []
            for _ in range(repeats):
                start = time.perf_counter()
                load_mnist(normalize=normalize, dataset=dataset, data_dir=data_dir)
                cached.append(time.perf_counter() - start)
        finally:
            if previous is None:
                os.environ.pop("DLSCRATCH_CACHE", None)
            else:
                os.environ["DLSCRATCH_CACHE"] = previous
    return {
        "cold_s": round(cold, 4),
        "cached_min_s": round(min(cached), 4) if cached else None,
        "cached_median_s": round(statistics.median(cached), 4) if cached else None,
        "repeats": repeats,
        "normalize": normalize,
        "train_shape": shape,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--raw", action="store_true", help="normalize=False (uint8)")
    args = parser.parse_args(argv)
    result = time_load_mnist(
        args.data_dir, dataset=args.dataset, repeats=args.repeats, normalize=not args.raw
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
