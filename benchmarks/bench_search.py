"""Hyperparameter search figures: trials per minute on Dask (1 and 2 workers) against an
in-process loop, and random search against TPE.

    .venv/bin/python benchmarks/bench_search.py speed              # Dask vs in-process
    .venv/bin/python benchmarks/bench_search.py samplers           # random vs TPE, 5 seeds
    .venv/bin/python benchmarks/bench_search.py samplers --seeds 3 --epochs 20 --trials 20 50
    .venv/bin/python benchmarks/bench_search.py pruning --seeds 2 --trials 30 --workers 0

The book's setup: 500 MNIST images split 400/100, a 6x100 ReLU network, SGD with
batches of 100, learning rate 10^[-6,-2] and weight decay 10^[-8,-4] on log scales,
50 epochs per trial. Prints figures; asserts nothing.

``speed`` starts one cluster of 1 worker and one of 2 (their start is not counted, and
each worker loads MNIST once before timing), then runs rounds of the same trials
(random sampler, no pruning, so every trial trains all its epochs) in-process, on 1
worker and on 2, in turn within each round, and reports medians over the rounds. All
three keep the study in a journal file, as ``dlscratch search`` does; the in-process loop
with Optuna's in-memory storage is shown too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from dlscratch.config import RunConfig
from dlscratch.hpo import DEFAULT_SPACE, local_cluster, search


def book_config(epochs: int = 50) -> RunConfig:
    return RunConfig.from_dict({"optimizer": "sgd", "hidden": [100] * 6, "limit": 500,
                                "val_split": 0.2, "epochs": epochs, "batch_size": 100})


def best_after(study, n: int) -> float:
    """The best validation accuracy among the first ``n`` trials (by number)."""
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)[:n]
              if t.value is not None]
    return max(values) if values else float("nan")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def speed(args) -> None:
    cfg = book_config(args.epochs)
    kw = dict(n_trials=args.speed_trials, sampler="random", pruner="none", seed=0)
    print(f"trials per minute: {args.speed_trials} trials x {args.rounds} rounds, "
          f"{args.epochs} epochs each, random sampler, no pruning")
    print(f"  before: {load()}")
    clusters = {n: local_cluster(n) for n in (1, 2)}  # as `dlscratch search` starts them
    rates = {k: [] for k in ("memory", "journal", 1, 2)}
    cpu = {k: [] for k in rates}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        try:
            for n, cluster in clusters.items():  # warm up: each worker loads MNIST once
                search(cfg, DEFAULT_SPACE, workers=n, scheduler=cluster.scheduler_address,
                       storage=Path(tmp) / f"warm{n}.log", **{**kw, "n_trials": n})
            order = ["memory", "journal", 1, 2]
            for r in range(args.rounds):
                for what in order[r % 4:] + order[: r % 4]:  # rotate who goes first
                    storage = Path(tmp) / f"r{r}-{what}.log"
                    cpu0 = cpu_seconds()
                    start = time.perf_counter()
                    if what == "memory":
                        search(cfg, DEFAULT_SPACE, workers=0, **kw)
                    elif what == "journal":
                        search(cfg, DEFAULT_SPACE, workers=0, storage=storage, **kw)
                    else:
                        search(cfg, DEFAULT_SPACE, workers=what, storage=storage,
                               scheduler=clusters[what].scheduler_address, **kw)
                    rates[what].append(args.speed_trials / (time.perf_counter() - start) * 60)
                    cpu[what].append((cpu_seconds() - cpu0) / args.speed_trials)
                print(f"  round {r + 1}: " + ", ".join(
                    f"{_label(k)} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
        finally:
            for cluster in clusters.values():
                cluster.close()
    print(f"  after: {load()}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("  median trials/min: " + "  ".join(f"{_label(k)} {v:.1f}" for k, v in med.items()))
    per = {k: statistics.median(v) for k, v in cpu.items()}
    print("  median CPU seconds per trial (this process, its schedulers, nannies and "
          "workers): " + "  ".join(f"{_label(k)} {v:.2f}" for k, v in per.items()))
    print("  cores this search got (CPU seconds / wall seconds): " + "  ".join(
        f"{_label(k)} {med[k] * per[k] / 60:.2f}" for k in med))
    print(f"  2 workers vs 1: {med[2] / med[1]:.2f}x (target >= 1.7x)")
    print(f"  Dask 1 worker per-trial overhead vs in-process, journal file: "
          f"{(med['journal'] / med[1] - 1) * 100:+.1f}% (target <= 5%)")
    print(f"  Dask 1 worker per-trial overhead vs in-process, in memory: "
          f"{(med['memory'] / med[1] - 1) * 100:+.1f}%")
    print(f"  CPU per trial, Dask 1 worker vs in-process (journal): "
          f"{(per[1] / per['journal'] - 1) * 100:+.1f}%; 2 workers vs in-process: "
          f"{(per[2] / per['journal'] - 1) * 100:+.1f}%")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and all its children (Dask's processes)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # it just ended
            continue
        total += t.user + t.system
    return total


def _label(key) -> str:
    return {"memory": "in-process (memory)", "journal": "in-process (journal)",
            1: "Dask 1 worker", 2: "Dask 2 workers"}[key]


def samplers(args) -> None:
    cfg = book_config(args.epochs)
    budget = max(args.trials)
    print(f"best validation accuracy after N trials, median over {args.seeds} seeds "
          f"({args.epochs} epochs per trial, no pruning, {args.workers} Dask workers)")
    print(f"  before: {load()}")
    bests, curves = {}, {}
    for sampler in ("random", "tpe"):
        bests[sampler] = {n: [] for n in args.trials}
        curves[sampler] = []
        for seed in range(args.seeds):
            result = search(cfg, DEFAULT_SPACE, n_trials=budget, sampler=sampler,
                            pruner="none", workers=args.workers, seed=seed)
            for n in args.trials:
                bests[sampler][n].append(best_after(result.study, n))
            curves[sampler].append([best_after(result.study, n) for n in range(1, budget + 1)])
        cells = "  ".join(f"after {n}: {statistics.median(v):.3f}"
                          for n, v in bests[sampler].items())
        print(f"  {sampler:6s}  {cells}   (per seed: "
              + "; ".join(",".join(f"{x:.2f}" for x in v) for v in bests[sampler].values())
              + ")", flush=True)
    target = statistics.median(bests["random"][budget])
    median_tpe = [statistics.median(c[n] for c in curves["tpe"]) for n in range(budget)]
    reach = next((n + 1 for n, v in enumerate(median_tpe) if v >= target), None)
    print(f"  after: {load()}")
    print(f"  TPE's median best reaches random's {budget}-trial median best ({target:.3f}) "
          f"after {reach if reach else f'more than {budget}'} trials (goal: <= {budget // 2})")


def pruning(args) -> None:
    """Total epochs trained with the median pruner and without, and the best found."""
    cfg = book_config(args.epochs)
    budget = max(args.trials)
    print(f"pruning: {budget} trials per seed, {args.seeds} seeds, random sampler (the same "
          f"trials with and without pruning), {args.epochs} epochs per trial")
    print(f"  before: {load()}")
    for pruner in ("none", "median"):
        epochs, bests = [], []
        for seed in range(args.seeds):
            result = search(cfg, DEFAULT_SPACE, n_trials=budget, sampler="random",
                            pruner=pruner, workers=args.workers, seed=seed)
            epochs.append(sum(t.user_attrs.get("epochs", 0) for t in result.study.trials))
            bests.append(best_after(result.study, budget))
        print(f"  {pruner:6s}  epochs trained: {sum(epochs)} (per seed {epochs}); best val acc "
              f"per seed {', '.join(f'{b:.2f}' for b in bests)}", flush=True)
    print(f"  after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("speed", "samplers", "pruning"))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--workers", type=int, default=2,
                        help="Dask workers for the sampler comparison (0: in-process)")
    parser.add_argument("--speed-trials", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    {"speed": speed, "samplers": samplers, "pruning": pruning}[args.part](args)


if __name__ == "__main__":
    main()
