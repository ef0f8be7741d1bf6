"""Convolutional networks: SimpleConvNet training and DeepConvNet inference, beside PyTorch.

    python benchmarks/bench_cnn.py              # a tenth of an epoch, extrapolated (about a minute)
    python benchmarks/bench_cnn.py --full       # a whole epoch and all 10,000 test images
    python benchmarks/bench_cnn.py --no-torch   # ours only
    python benchmarks/bench_cnn.py --no-torch --cache-bytes 0
                                                # convolutions on the whole batch at once

Measures, in float32 with the same number of BLAS / PyTorch threads (``--threads``, 2):

* a SimpleConvNet training epoch (chapter 7: conv 30x5x5 - ReLU - pool - affine 100 -
  ReLU - affine 10, Adam lr 0.001, batch 100), from ``--steps`` steps times 600;
* the time of the same step's matrix products alone (the same shapes, run back to back):
  their share of the step says how close the layers come to the machine's limit;
* DeepConvNet inference (chapter 8) on ``--images`` test images, 100 at a time;
* the same two with PyTorch (``Conv2d`` + ``MaxPool2d``) when it is installed.

Each figure is the median of ``--repeat`` runs, with the range; the cases take turns
within a repeat, and the ratios ours / PyTorch are taken repeat by repeat.

``dlscratch bench`` measures the same two cases as whole epochs in separate processes,
with their peak memory (configuration (e) and "DeepConvNet inference"); this script
adds the share of the matrix products and runs in about a minute.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

STEPS_PER_EPOCH = 600  # 60,000 images / batch 100


def _summary(times) -> str:
    return f"median {statistics.median(times):.3f} s (range {min(times):.3f}-{max(times):.3f})"


def _batches(n_train: int, steps: int, batch: int, seed: int):
    """``steps`` batches of a shuffled order, wrapping round (a warm-up step may make it
    one more than an epoch)."""
    order = np.random.default_rng(seed).permutation(n_train)
    order = np.resize(order, steps * batch)
    return [order[k * batch : (k + 1) * batch] for k in range(steps)]


def ours_training(x, t, steps: int, batch: int, seed: int) -> float:
    """Seconds for ``steps`` Adam steps of a SimpleConvNet (after one warm-up step)."""
    from dlscratch.nets import SimpleConvNet
    from dlscratch.optim import Adam

    net, opt = SimpleConvNet(rng=seed), Adam(lr=0.001)
    idx = _batches(x.shape[0], steps + 1, batch, seed)
    # the Trainer's step: the network's own gradient buffers (reuse=True), no per-step checks
    opt.update(net.params, net.gradient(x[idx[0]], t[idx[0]], reuse=True))
    start = time.perf_counter()
    for i in idx[1:]:
        opt.update(net.params, net.gradient(x[i], t[i], reuse=True))
    return time.perf_counter() - start


def ours_matmul_only(steps: int, batch: int, seed: int) -> float:
    """Seconds for the matrix products of ``steps`` SimpleConvNet steps, nothing else."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    W1, col, dout1 = r(30, 25), r(batch, 25, 576), r(batch, 30, 576)
    x2, W2, d2 = r(batch, 4320), r(4320, 100), r(batch, 100)
    W3, d3 = r(100, 10), r(batch, 10)
    W2T = np.ascontiguousarray(W2.T)
    start = time.perf_counter()
    for _ in range(steps):
        np.matmul(W1, col)  # conv forward
        h = x2 @ W2  # affine 2 forward
        h @ W3  # affine 3 forward
        h.T @ d3  # dW3
        d3 @ W3.T  # dx3
        x2.T @ d2  # dW2
        d2 @ W2T  # dx2
        np.matmul(dout1, col.transpose(0, 2, 1))  # conv dW
    return time.perf_counter() - start


def ours_inference(x, batch: int, seed: int) -> float:
    from dlscratch.nets import DeepConvNet

    net = DeepConvNet(rng=seed)
    net.predict(x[:batch])
    start = time.perf_counter()
    for lo in range(0, x.shape[0], batch):
        net.predict(x[lo : lo + batch])
    return time.perf_counter() - start


def torch_training(torch, x, t, steps: int, batch: int, seed: int) -> float:
    from dlscratch.bench import torch_simple_cnn

    nn = torch.nn
    torch.manual_seed(seed)
    model = torch_simple_cnn(nn)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x.reshape(-1, 1, 28, 28))
    tt = torch.from_numpy(t.astype(np.int64))
    idx = [torch.from_numpy(i) for i in _batches(x.shape[0], steps + 1, batch, seed)]

    def step(i):
        opt.zero_grad()
        loss_fn(model(xt[i]), tt[i]).backward()
        opt.step()

    step(idx[0])
    start = time.perf_counter()
    for i in idx[1:]:
        step(i)
    return time.perf_counter() - start


def torch_inference(torch, x, batch: int, seed: int) -> float:
    from dlscratch.bench import torch_deep_cnn

    torch.manual_seed(seed)
    model = torch_deep_cnn(torch.nn)
    xt = torch.from_numpy(x.reshape(-1, 1, 28, 28))
    with torch.no_grad():
        model(xt[:batch])
        start = time.perf_counter()
        for lo in range(0, x.shape[0], batch):
            model(xt[lo : lo + batch])
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps timed (60)")
    parser.add_argument("--images", type=int, default=2000, help="test images inferred (2000)")
    parser.add_argument("--full", action="store_true", help="a whole epoch and 10,000 images")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--cache-bytes", type=int, default=None,
                        help="convolution group size in bytes of columns (default: "
                        "dlscratch.fast.CACHE_BYTES; 0: the whole batch at once)")
    args = parser.parse_args(argv)
    if args.full:
        args.steps, args.images = STEPS_PER_EPOCH, 10_000

    import dlscratch.fast
    from dlscratch.backend import blas_info, set_num_threads
    from dlscratch.data import load_mnist

    set_num_threads(args.threads)
    if args.cache_bytes is not None:
        dlscratch.fast.CACHE_BYTES = args.cache_bytes or 2**62
    torch = None
    if not args.no_torch:
        try:
            import torch  # type: ignore[import-not-found]

            torch.set_num_threads(args.threads)
        except ImportError:
            print("(PyTorch not installed: ours only)")
    (x, t), (x_test, _) = load_mnist(normalize=True, flatten=True)
    x_test = np.ascontiguousarray(x_test[: args.images])
    scale = STEPS_PER_EPOCH / args.steps
    print(f"threads {args.threads}; BLAS {blas_info()}; "
          f"convolution groups of {dlscratch.fast.CACHE_BYTES:,} bytes of columns")
    print(f"SimpleConvNet training: {args.steps} steps (x{scale:g} = one epoch), batch 100, Adam")

    # The cases take turns within each repeat, so that a change in the machine's load
    # during the run reaches ours and PyTorch's figures alike.
    inference = f"DeepConvNet inference, {args.images} images"
    cases = {
        "ours: SimpleConvNet epoch": lambda s: ours_training(x, t, args.steps, 100, s) * scale,
        "ours: its matrix products alone": lambda s: ours_matmul_only(args.steps, 100, s) * scale,
        f"ours: {inference}": lambda s: ours_inference(x_test, 100, s),
    }
    if torch is not None:
        cases["torch: SimpleConvNet epoch"] = (
            lambda s: torch_training(torch, x, t, args.steps, 100, s) * scale
        )
        cases[f"torch: {inference}"] = lambda s: torch_inference(torch, x_test, 100, s)
    rows = {name: [] for name in cases}
    for s in range(args.repeat):
        for name, case in cases.items():
            rows[name].append(case(s))
    width = max(map(len, rows))
    for name, times in rows.items():
        print(f"  {name:<{width}}  {_summary(times)}")
    med = {name: statistics.median(times) for name, times in rows.items()}
    epoch, mm = med["ours: SimpleConvNet epoch"], med["ours: its matrix products alone"]
    print(f"  share of the SimpleConvNet step in matrix products: {mm / epoch:.0%}")
    if torch is not None:
        for what, ours, theirs, target in [
            ("SimpleConvNet epoch", "ours: SimpleConvNet epoch", "torch: SimpleConvNet epoch", 0.5),
            ("DeepConvNet inference", f"ours: {inference}", f"torch: {inference}", 1.0),
        ]:
            ratios = [a / b for a, b in zip(rows[ours], rows[theirs])]  # repeat by repeat
            print(
                f"  {what}, ours / torch: median {statistics.median(ratios):.2f} "
                f"(range {min(ratios):.2f}-{max(ratios):.2f}; target <= {target})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
