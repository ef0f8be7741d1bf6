"""Hyperparameter search figures: random vs TPE, and trials per minute with 1 vs 2 Dask workers.

    .venv/bin/python benchmarks/bench_search.py                 # the book's setup, 5 seeds
    .venv/bin/python benchmarks/bench_search.py --seeds 2 --epochs 5 --trials 20 50

The book's setup: 500 MNIST images split 400/100, a 6x100 ReLU network, SGD, learning
rate 10^[-6,-2] and weight decay 10^[-8,-4] on log scales. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dlscratch.config import RunConfig
from dlscratch.hpo import DEFAULT_SPACE, search


def book_config(epochs: int) -> RunConfig:
    return RunConfig.from_dict({"optimizer": "sgd", "hidden": [100] * 6, "limit": 500,
                                "val_split": 0.2, "epochs": epochs, "batch_size": 100})


def best_after(study, n: int) -> float:
    values = [t.value for t in study.trials[:n] if t.value is not None]
    return max(values) if values else float("nan")


def trials_per_minute(cfg: RunConfig, workers: int, n_trials: int) -> float:
    """Trials per minute; Dask runs on a cluster started beforehand (its start not counted)."""
    kw = dict(n_trials=n_trials, sampler="random", pruner="none", seed=0)
    if workers == 0:
        start = time.perf_counter()
        search(cfg, DEFAULT_SPACE, workers=0, **kw)
        return n_trials / (time.perf_counter() - start) * 60
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster:
        search(cfg, DEFAULT_SPACE, workers=workers, scheduler=cluster.scheduler_address,
               **{**kw, "n_trials": workers})  # warm up: every worker loads MNIST once
        start = time.perf_counter()
        search(cfg, DEFAULT_SPACE, workers=workers, scheduler=cluster.scheduler_address, **kw)
        return n_trials / (time.perf_counter() - start) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--speed-trials", type=int, default=8)
    args = parser.parse_args()
    cfg = book_config(args.epochs)
    budget = max(args.trials)

    print(f"best validation accuracy, median over {args.seeds} seeds "
          f"({args.epochs} epochs per trial, no pruning, in-process)")
    for sampler in ("random", "tpe"):
        bests = {n: [] for n in args.trials}
        for seed in range(args.seeds):
            result = search(cfg, DEFAULT_SPACE, n_trials=budget, sampler=sampler,
                            pruner="none", workers=0, seed=seed)
            for n in args.trials:
                bests[n].append(best_after(result.study, n))
        cells = "  ".join(f"{n} trials: {statistics.median(v):.3f}" for n, v in bests.items())
        print(f"  {sampler:6s}  {cells}")

    print(f"trials per minute ({args.speed_trials} trials, random sampler, no pruning)")
    rates = {}
    for workers in (0, 1, 2):
        rates[workers] = trials_per_minute(cfg, workers, args.speed_trials)
        label = "in-process" if workers == 0 else f"{workers} Dask worker(s)"
        print(f"  {label:18s} {rates[workers]:.1f} trials/min (cluster start excluded)")
    print(f"  speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x; Dask 1 worker vs in-process "
          f"overhead: {(rates[0] / rates[1] - 1) * 100:.0f}%")


if __name__ == "__main__":
    main()
