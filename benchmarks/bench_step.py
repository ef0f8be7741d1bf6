"""Where the time of one training step goes: each layer's forward and backward, the loss,
the input check and the optimizer, averaged over an epoch of MNIST.

    python benchmarks/bench_step.py            # (b) 784-100-100-10 ReLU + Adam
    python benchmarks/bench_step.py --config c # with batch norm (a, b, c, d as in dlscratch bench)

The step is taken apart exactly as ``Network.gradient`` runs it, with a clock
read between the parts (which adds well under a microsecond per part).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def time_step_parts(config: str = "b", epochs: int = 2, batch_size: int = 100, seed: int = 0):
    """Mean microseconds per step of each part, over the last of ``epochs`` epochs."""
    from dlscratch.bench import CONFIGS, _build_ours
    from dlscratch.data import load_mnist, to_float

    (x, t), _ = load_mnist(normalize=False)
    t = t.astype(np.intp)
    net, opt = _build_ours(CONFIGS[config], seed, "cpu")
    rng = np.random.default_rng(seed)
    parts: dict = {}

    def lap(name, start):
        now = time.perf_counter()
        parts[name] = parts.get(name, 0.0) + now - start
        return now

    steps = x.shape[0] // batch_size
    for _ in range(epochs):
        parts.clear()
        order = rng.permutation(x.shape[0])
        for k in range(steps):
            idx = order[k * batch_size : (k + 1) * batch_size]
            clock = time.perf_counter()
            xb, tb = to_float(x.take(idx, axis=0)), t[idx]
            clock = lap("data (take + to_float)", clock)
            h = net._as_input(xb)
            clock = lap("input check", clock)
            for name, layer in net.layers.items():
                h = layer.forward(h, train=True)
                clock = lap(f"forward  {name}", clock)
            net.last_layer.forward(h, tb)
            clock = lap("forward  loss", clock)
            dout = net.last_layer.backward(1.0)
            clock = lap("backward loss", clock)
            for name, layer in reversed(net.layers.items()):
                dout = layer.backward(dout)
                clock = lap(f"backward {name}", clock)
            grads = type(net._grads)(net._grads.items(), net.flat_grads, net._grads.layout)
            opt.update(net.params, grads)
            lap(f"update   {type(opt).__name__}", clock)
    return {name: seconds / steps * 1e6 for name, seconds in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("a", "b", "c", "d"), default="b")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    parts = time_step_parts(args.config, args.epochs)
    total = sum(parts.values())
    for name, us in parts.items():
        print(f"{name:<32}{us:8.1f} us  {100 * us / total:5.1f} %")
    print(f"{'step':<32}{total:8.1f} us  ({total * 600 / 1e6:.3f} s per 600-step epoch)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
