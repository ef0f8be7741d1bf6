"""One training epoch of the default network with 1 and with 2 BLAS threads, interleaved.

    python benchmarks/bench_threads.py --rounds 5
    python benchmarks/bench_threads.py --rounds 5 --busy 1    # beside one busy process

Prints the median and range of each; the figures in benchmarks/README.md come from here.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from dlscratch.config import RunConfig, build_trainer, load_run_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside it")
    args = parser.parse_args(argv)
    cfg = RunConfig(epochs=1)
    data = load_run_data(cfg)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    times = {1: [], 2: []}
    try:
        for _ in range(args.rounds):
            for n in times:
                with threadpool_limits(limits=n, user_api="blas"):
                    trainer = build_trainer(cfg, data)
                    start = time.perf_counter()
                    trainer.fit()
                    times[n].append(time.perf_counter() - start)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    for n, values in times.items():
        print(f"{n} thread(s): median {statistics.median(values):.2f} s per epoch "
              f"(range {min(values):.2f}-{max(values):.2f}, {len(values)} epochs, "
              f"{args.busy} busy process(es) beside)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
