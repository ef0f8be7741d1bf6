"""Speed and memory benchmark: ``dlscratch bench`` or ``python -m dlscratch.bench``.

One run measures, side by side:

* **training**: seconds per epoch (60,000 MNIST images in batches of 100, one
  shuffled pass = 600 steps, float32) and peak resident memory for

  - (a) ``TwoLayerNet`` 784-50-10 sigmoid + SGD(lr=0.1),
  - (b) ``MultiLayerNet`` 784-100-100-10 ReLU + Adam(lr=1e-3),
  - (c) (b) with batch normalization,
  - (d) (b) with dropout (ratio 0.5),
  - (e) ``SimpleConvNet`` (chapter 7: conv 30x5x5 - ReLU - pool 2x2 - affine
    4320-100 - ReLU - affine 100-10, weights of std 0.01) + Adam(lr=1e-3);

  and, when PyTorch is installed, the same networks in PyTorch (Adam both in
  its default and its ``fused=True`` form). The frameworks take turns epoch by
  epoch (interleaved, the order rotating every round), so that a slower or
  busier moment of the machine hits all of them alike; the ratios
  ours / PyTorch are the median over the rounds, with the min-max range.
* **accuracy** of (b) on the test set after 10 epochs (the speed work must
  not cost accuracy);
* **inference** time of the book's pretrained 784-50-100-10 network on the
  10,000 test images, and of chapter 8's ``DeepConvNet`` on them, 100 at a time,
  beside the same network in PyTorch (``Conv2d`` + ``MaxPool2d``), the two
  taking turns;
* ``load_mnist`` from its cache;
* **numerical gradient** time per parameter, against backpropagation.

Every training configuration runs in a process of its own (ours and each
PyTorch variant separately), which reads its own peak resident set size
(``ru_maxrss``), so the memory figures do not mix. Data stay uint8 in memory
and each batch is converted to float32 in [0, 1] when drawn, in both
frameworks. BLAS threads are set through the environment of those processes
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) and
``torch.set_num_threads``.

``--quick`` is a smoke run of a few seconds (1,000 images, one round, no
warm-up) that only shows that everything runs; its numbers mean little.

Results go to stdout as a table and, with ``--json PATH``, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlscratch.cli.options import non_negative_int, positive_int
from dlscratch.data import to_float
from dlscratch.provenance import versions

#: The benchmarked networks: description, our constructor arguments, optimizer.
CONFIGS = {
    "a": {
        "title": "(a) TwoLayerNet 784-50-10 sigmoid + SGD(0.1)",
        "hidden": [50],
        "activation": "sigmoid",
        "optimizer": ("sgd", 0.1),
    },
    "b": {
        "title": "(b) 784-100-100-10 ReLU + Adam(1e-3)",
        "hidden": [100, 100],
        "activation": "relu",
        "optimizer": ("adam", 1e-3),
    },
    "c": {
        "title": "(c) (b) + batch norm",
        "hidden": [100, 100],
        "activation": "relu",
        "optimizer": ("adam", 1e-3),
        "batchnorm": True,
    },
    "d": {
        "title": "(d) (b) + dropout 0.5",
        "hidden": [100, 100],
        "activation": "relu",
        "optimizer": ("adam", 1e-3),
        "dropout": 0.5,
    },
    "e": {
        "title": "(e) SimpleConvNet (ch. 7) + Adam(1e-3)",
        "net": "simple-cnn",
        "hidden": [100],
        "activation": "relu",
        "init": 0.01,
        "optimizer": ("adam", 1e-3),
    },
}

#: The frameworks compared; PyTorch's fused Adam only where there is an Adam.
FRAMEWORKS = ("ours", "torch", "torch_fused")

#: Targets of the speed work: (name, what is measured, limit).
TARGETS = (
    ("(b) ours / PyTorch default Adam", ("b", "torch"), 0.5),
    ("(b) ours / PyTorch fused Adam", ("b", "torch_fused"), 0.65),
    ("(a) ours / PyTorch", ("a", "torch"), 0.7),
    ("(c) ours / PyTorch", ("c", "torch"), 0.7),
    ("(d) ours / PyTorch", ("d", "torch"), 0.7),
    ("(e) ours / PyTorch default Adam", ("e", "torch"), 0.5),
)
#: Peak resident memory of a training process, MiB: (b), and (e) whose im2col columns
#: must be sized by the batch, not by the data set.
RSS_LIMITS_MIB = {"b": 300.0, "e": 1024.0}
CNN_INFERENCE_LIMIT = 1.0  # DeepConvNet inference, ours / PyTorch
INFERENCE_LIMIT_S = 0.05
LOAD_CACHED_LIMIT_S = 0.2
ACCURACY_MIN = 0.97

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
QUICK_SAMPLES = 1000


# ============================================================================ options
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``dlscratch bench`` and ``python -m dlscratch.bench``)."""
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 images, 1 round (seconds)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--configs",
        type=_configs,
        default=tuple(CONFIGS),
        metavar="LIST",
        help=f"networks to train, comma-separated from {','.join(CONFIGS)} (default: all)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=None,
        help="timed epochs per framework (default 5; 1 with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=None,
        help="untimed epochs first (default 1; 0 with --quick)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=2, help="BLAS / PyTorch threads (default 2)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=100, help="images per step (default 100)"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="train on the CPU (NumPy) or an NVIDIA GPU (CuPy; PyTorch on CUDA)",
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="skip PyTorch even when it is installed"
    )
    parser.add_argument(
        "--accuracy-epochs",
        type=non_negative_int,
        default=None,
        help="epochs of (b) before its test accuracy is measured (default 10; 1 with "
        "--quick; 0 skips)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the MNIST files")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="the book's sample_weight.pkl for the inference test (default: looked for "
        "beside $DLSCRATCH_DATA)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and batch order")


def _configs(text: str) -> tuple:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown configuration(s) {', '.join(unknown) or text!r}: choose from "
            f"{','.join(CONFIGS)}"
        )
    return names


# ============================================================================ data
def _load_data(spec: dict):
    """uint8 images (N, 784) and integer labels for training and testing, plus their source."""
    n = spec.get("samples")
    try:
        from dlscratch.data import load_mnist

        (x, t), (xt, tt) = load_mnist(normalize=False, data_dir=spec.get("data_dir"))
        source = "mnist"
    except Exception as exc:  # no data files: synthetic data of the same shapes
        if not spec.get("allow_synthetic"):
            raise
        rng = np.random.default_rng(1234)
        size = n or 60000
        x = rng.integers(0, 256, (size, 784), dtype=np.uint8)
        t = rng.integers(0, 10, size, dtype=np.uint8)
        xt = rng.integers(0, 256, (max(size // 6, 100), 784), dtype=np.uint8)
        tt = rng.integers(0, 10, xt.shape[0], dtype=np.uint8)
        source = f"synthetic ({type(exc).__name__})"
    if n:
        x, t, xt, tt = x[:n], t[:n], xt[:n], tt[:n]
    return (np.ascontiguousarray(x), t.astype(np.intp)), (xt, tt.astype(np.intp)), source


def _synchronize(device: str) -> None:
    if device == "cuda":
        from dlscratch.backend import xp_for

        xp_for("cuda").cuda.Device().synchronize()


# ============================================================================ our networks
def _build_ours(config: dict, seed: int, device: str):
    """Network and optimizer through the run configuration, as ``dlscratch train`` builds them."""
    from dlscratch.config import RunConfig

    name, lr = config["optimizer"]
    cfg = RunConfig(
        net=config.get("net", "mlp"),
        hidden=tuple(config["hidden"]),
        activation=config["activation"],
        init=config.get("init", 0.01 if config["activation"] == "sigmoid" else "he"),
        batchnorm=config.get("batchnorm", False),
        dropout=config.get("dropout", 0.0),
        optimizer=name,
        lr=lr,
        seed=seed,
        device=device,
    )
    return cfg.build_network(cfg.rngs()["init"]), cfg.build_optimizer()


class _OursRunner:
    """Our network trained by the library's one loop, :class:`~dlscratch.training.Trainer`.

    One epoch at a time (``fit`` with ``epochs`` raised by one), the training set
    evaluated on one sample only, so the time is the steps' (batches drawn in the same
    order as PyTorch's: a permutation per epoch from ``default_rng(seed + 1)``).
    """

    def __init__(self, config, data, batch_size, seed, device):
        from dlscratch.backend import xp_for
        from dlscratch.training import Trainer

        (x, t), (xt, tt), _ = data
        self.net, self.opt = _build_ours(config, seed, device)
        self.device = device
        self.xp = xp_for(device)
        self.x_test, self.t_test = xt, tt
        self.trainer = Trainer(
            self.net, self.opt, x, t, epochs=1, batch_size=batch_size,
            rng=np.random.default_rng(seed + 1), train_eval_size=1, handle_interrupt=False,
        )

    def epoch(self) -> float:
        trainer = self.trainer
        trainer.epochs = trainer.epoch + 1
        _synchronize(self.device)
        start = time.perf_counter()
        trainer.fit()
        _synchronize(self.device)
        return time.perf_counter() - start

    def loss(self) -> float:
        return float(self.net.last_loss)

    def accuracy(self) -> float:
        return self.net.accuracy(
            self.xp.asarray(to_float(self.x_test)), self.xp.asarray(self.t_test)
        )


class _TorchRunner:
    """The same network, data pipeline and batch order in PyTorch."""

    def __init__(self, config, data, batch_size, seed, device, threads, fused):
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        nn = torch.nn
        (x, t), (xt, tt), _ = data
        self.torch, self.device, self.batch_size = torch, device, batch_size
        if config.get("net") == "simple-cnn":
            self.model = torch_simple_cnn(nn, config["hidden"][0]).to(device)
            self.shape = (-1, 1, 28, 28)
        else:
            self.model = _torch_mlp(nn, config).to(device)
            self.shape = (-1, 784)
        name, lr = config["optimizer"]
        params = self.model.parameters()
        if name == "sgd":
            self.opt = torch.optim.SGD(params, lr=lr)
        else:
            self.opt = torch.optim.Adam(params, lr=lr, fused=True if fused else None)
        self.x = torch.from_numpy(x).to(device)
        self.t = torch.from_numpy(t.astype(np.int64)).to(device)
        self.x_test, self.t_test = xt, tt
        self.rng = np.random.default_rng(seed + 1)
        self._loss = float("nan")

    def _sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, b = self.torch, self.batch_size
        f = torch.nn.functional
        order = torch.from_numpy(self.rng.permutation(self.x.shape[0])).to(self.device)
        self.model.train()
        self._sync()
        start = time.perf_counter()
        for k in range(self.x.shape[0] // b):
            idx = order[k * b : (k + 1) * b]
            xb = self.x[idx].float().div_(255.0).reshape(self.shape)
            self.opt.zero_grad(set_to_none=True)
            loss = f.cross_entropy(self.model(xb), self.t[idx])
            loss.backward()
            self.opt.step()
        self._sync()
        elapsed = time.perf_counter() - start
        self._loss = float(loss)
        return elapsed

    def loss(self) -> float:
        return self._loss

    def accuracy(self) -> float:
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            x = torch.from_numpy(to_float(self.x_test)).to(self.device).reshape(self.shape)
            pred = self.model(x).argmax(dim=1).cpu().numpy()
        return float((pred == self.t_test).mean())


def _torch_mlp(nn, config: dict):
    sizes = [784, *config["hidden"], 10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i == len(sizes) - 2:
            break
        if config.get("batchnorm"):
            layers.append(nn.BatchNorm1d(sizes[i + 1], eps=1e-7, momentum=0.1))
        layers.append(nn.ReLU() if config["activation"] == "relu" else nn.Sigmoid())
        if "dropout" in config:
            layers.append(nn.Dropout(config["dropout"]))
    return nn.Sequential(*layers)


def torch_simple_cnn(nn, hidden: int = 100):
    """Chapter 7's SimpleConvNet in PyTorch (``nn`` is ``torch.nn``)."""
    return nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(30 * 12 * 12, hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )


def torch_deep_cnn(nn, params: dict | None = None):
    """Chapter 8's DeepConvNet in PyTorch, optionally with the book's arrays ``W1``...``b8``.

    Inference only: the dropout layers are left out, and with the book's arrays the
    hidden layer is scaled by 0.5 (the book's dropout at test time) through ``W8``.
    """
    import torch

    from dlscratch.nets.cnn import DEEP_CONV_PARAMS

    layers, channels, convs = [], 1, []
    for i, p in enumerate(DEEP_CONV_PARAMS):
        conv = nn.Conv2d(channels, p["filter_num"], p["filter_size"], padding=p["pad"])
        layers += [conv, nn.ReLU()]
        convs.append(conv)
        channels = p["filter_num"]
        if i % 2:
            layers.append(nn.MaxPool2d(2))
    fc7, fc8 = nn.Linear(64 * 4 * 4, 50), nn.Linear(50, 10)
    layers += [nn.Flatten(), fc7, nn.ReLU(), fc8]
    if params is not None:
        with torch.no_grad():
            for i, layer in enumerate([*convs, fc7, fc8], start=1):
                W = torch.from_numpy(np.asarray(params[f"W{i}"], dtype=np.float32))
                layer.weight.copy_(W if i <= 6 else W.T * (0.5 if i == 8 else 1.0))
                layer.bias.copy_(torch.from_numpy(np.asarray(params[f"b{i}"], np.float32)))
    return nn.Sequential(*layers).eval()


# ============================================================================ worker process
def _peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _worker(spec: dict) -> int:
    """Serve one training configuration: answer ``epoch``, ``accuracy`` and ``quit`` lines."""

    def reply(**obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    start = time.perf_counter()
    data = _load_data(spec)
    config = CONFIGS[spec["config"]]
    if spec["framework"] == "ours":
        from dlscratch.backend import set_num_threads

        set_num_threads(spec["threads"])  # as `dlscratch train --threads N` does
        runner = _OursRunner(config, data, spec["batch_size"], spec["seed"], spec["device"])
    else:
        runner = _TorchRunner(
            config,
            data,
            spec["batch_size"],
            spec["seed"],
            spec["device"],
            spec["threads"],
            fused=spec["framework"] == "torch_fused",
        )
    reply(ready=True, setup_s=time.perf_counter() - start, data=data[2], rss_mib=_peak_rss_mib())
    for line in sys.stdin:
        command = line.strip()
        if command == "epoch":
            seconds = runner.epoch()
            reply(seconds=seconds, loss=runner.loss())
        elif command == "accuracy":
            reply(accuracy=runner.accuracy())
        elif command == "quit":
            reply(peak_rss_mib=_peak_rss_mib())
            return 0
    return 0


class _Worker:
    """A training process driven line by line (see :func:`_worker`)."""

    def __init__(self, spec: dict, threads: int):
        env = dict(os.environ)
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
        self.spec = spec
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlscratch.bench", "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:]
            raise RuntimeError(
                f"benchmark worker {self.spec['config']}/{self.spec['framework']} failed "
                f"(exit {self.proc.returncode}):\n{tail}"
            )
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        try:
            return self.ask("quit")
        finally:
            self.proc.stdin.close()
            self.proc.wait()
            self._stderr.close()

    def kill(self) -> None:
        """End the process if it is still running (after an error)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _spec(config, framework, batch_size, threads, device, seed, data) -> dict:
    """What a worker process is told to train (see :func:`_worker`)."""
    return {
        "config": config,
        "framework": framework,
        "batch_size": batch_size,
        "threads": threads,
        "device": device,
        "seed": seed,
        **data,
    }


# ============================================================================ measurements
def _spread(values) -> dict:
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def _frameworks(config: dict, with_torch: bool) -> list:
    if not with_torch:
        return ["ours"]
    if config["optimizer"][0] == "adam":
        return list(FRAMEWORKS)
    return ["ours", "torch"]


def bench_training(names, *, with_torch, rounds, warmup, threads, batch_size, device, seed, data):
    """Interleaved epochs of every framework for each configuration in ``names``."""
    results = {}
    for name in names:
        config = CONFIGS[name]
        frameworks = _frameworks(config, with_torch)
        workers = {}
        try:
            for fw in frameworks:
                workers[fw] = _Worker(
                    _spec(name, fw, batch_size, threads, device, seed, data), threads
                )
            for _ in range(warmup):
                for fw in frameworks:
                    workers[fw].ask("epoch")
            times = {fw: [] for fw in frameworks}
            losses = {}
            for r in range(rounds):
                turn = frameworks[r % len(frameworks) :] + frameworks[: r % len(frameworks)]
                for fw in turn:
                    answer = workers[fw].ask("epoch")
                    times[fw].append(answer["seconds"])
                    losses[fw] = answer["loss"]
            peaks = {fw: workers[fw].close()["peak_rss_mib"] for fw in frameworks}
        finally:
            for w in workers.values():
                w.kill()
        entry = {"title": config["title"], "data": workers["ours"].info["data"]}
        for fw in frameworks:
            entry[fw] = {
                "epoch_s": _spread(times[fw]),
                "peak_rss_mib": peaks[fw],
                "setup_rss_mib": workers[fw].info["rss_mib"],
                "last_loss": losses[fw],
            }
        for fw in frameworks[1:]:
            ratios = [a / b for a, b in zip(times["ours"], times[fw])]
            entry[f"ratio_vs_{fw}"] = _spread(ratios)
        results[name] = entry
    return results


def bench_accuracy(epochs, *, threads, batch_size, device, seed, data) -> dict:
    """Train (b) for ``epochs`` epochs in its own process; test accuracy after each."""
    worker = _Worker(_spec("b", "ours", batch_size, threads, device, seed, data), threads)
    try:
        seconds = [worker.ask("epoch")["seconds"] for _ in range(epochs)]
        accuracy = worker.ask("accuracy")["accuracy"]
        worker.close()
    finally:
        worker.kill()
    return {"config": "b", "epochs": epochs, "test_accuracy": accuracy, "seconds": sum(seconds)}


def _test_set(data_dir, quick):
    """MNIST's test images in [0, 1] and labels (the first 1,000 with ``quick``), or a
    ``{"skipped": ...}`` dict saying why there are none."""
    from dlscratch.data import load_mnist

    try:
        _, (x, t) = load_mnist(normalize=True, data_dir=data_dir)
    except Exception as exc:
        return {"skipped": f"no MNIST test set: {exc}"}
    return (x[:QUICK_SAMPLES], t[:QUICK_SAMPLES]) if quick else (x, t)


def bench_inference(weights, *, data_dir, repeats, quick) -> dict:
    """Time the pretrained network on the test images, batched and in batches of 100."""
    from dlscratch.io import find_book_weights, load_book_weights

    try:
        path = find_book_weights(weights)
    except FileNotFoundError as exc:
        return {"skipped": f"{exc}".splitlines()[0] + " (pass --weights PATH)"}
    test = _test_set(data_dir, quick)
    if isinstance(test, dict):
        return test
    x, t = test
    net = load_book_weights(path)

    def best_of(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    one_batch = best_of(lambda: net.predict(x))
    by_100 = best_of(lambda: [net.predict(x[i : i + 100]) for i in range(0, len(x), 100)])
    accuracy = net.accuracy(x, t, batch_size=None)
    return {
        "weights": str(path),
        "images": int(len(x)),
        "one_batch_s": one_batch,
        "batches_of_100_s": by_100,
        "images_per_s": len(x) / one_batch,
        "accuracy": accuracy,
    }


def bench_cnn_inference(weights, *, data_dir, repeats, quick, threads, with_torch) -> dict:
    """DeepConvNet (chapter 8) on the test images, 100 at a time, ours and PyTorch's in turn.

    With the book's ``deep_convnet_params.pkl`` (found like ``--weights``) both
    networks carry its weights and their accuracies must agree; without it, both
    run on He-initialised weights (the time does not depend on the values).
    """
    from dlscratch.book_weights import load_book_network
    from dlscratch.io import DEEP_CONVNET_FILE, find_book_weights
    from dlscratch.nets import DeepConvNet

    test = _test_set(data_dir, quick)
    if isinstance(test, dict):
        return test
    x, t = test
    try:
        path = find_book_weights(weights, name=DEEP_CONVNET_FILE)
    except FileNotFoundError:
        path = None
    # the file is read (and checked) once; PyTorch's network gets the same arrays
    net = load_book_network(path, dtype=np.float32) if path else DeepConvNet(rng=0)
    params = dict(net.params) if path else None
    runs = {"ours": lambda: [net.predict(x[i : i + 100]) for i in range(0, len(x), 100)]}
    if with_torch:
        import torch

        torch.set_num_threads(threads)
        model = torch_deep_cnn(torch.nn, params)
        xt = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, 28, 28)))

        def torch_run():
            with torch.no_grad():
                return [model(xt[i : i + 100]).numpy() for i in range(0, len(x), 100)]

        runs["torch"] = torch_run
    times = {name: [] for name in runs}
    scores = {name: run() for name, run in runs.items()}  # warm-up, and the answers
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    result = {"weights": str(path) if path else "He-initialised (book file not found)",
              "images": int(len(x))}
    for name in runs:
        result[name] = {"s": _spread(times[name]),
                        "accuracy": float((np.concatenate(scores[name]).argmax(1) == t).mean())}
    if "torch" in runs:
        result["ratio"] = _spread([a / b for a, b in zip(times["ours"], times["torch"])])
    return result


def bench_load_mnist(data_dir, *, repeats) -> dict:
    """Seconds for ``load_mnist`` from its cache (median and range of ``repeats`` calls)."""
    from dlscratch.data import load_mnist

    try:
        times = []
        for _ in range(max(int(repeats), 1)):
            start = time.perf_counter()
            load_mnist(normalize=False, data_dir=data_dir)
            times.append(time.perf_counter() - start)
    except (OSError, ValueError) as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    return {"cached_median_s": float(np.median(times)), "cached_min_s": min(times),
            "cached_max_s": max(times), "repeats": len(times)}


def bench_numerical_gradient(*, quick) -> dict:
    """Seconds per parameter of central differences vs one backpropagation, TwoLayerNet."""
    from dlscratch.gradient import numerical_gradient
    from dlscratch.nets import TwoLayerNet

    rng = np.random.default_rng(0)
    batch = 10 if quick else 100
    x = rng.random((batch, 784))
    t = rng.integers(0, 10, batch)
    net = TwoLayerNet(784, 50, 10, dtype=np.float64, rng=0)
    param = net.params["W2"]  # 500 of the 39,760 parameters

    start = time.perf_counter()
    numerical_gradient(lambda _: net.loss(x, t, train=True), param)
    numerical = time.perf_counter() - start
    per_param = numerical / param.size

    net.gradient(x, t)
    repeats = 5 if quick else 50
    start = time.perf_counter()
    for _ in range(repeats):
        net.gradient(x, t)
    backprop = (time.perf_counter() - start) / repeats
    n_params = sum(p.size for p in net.params.values())
    return {
        "network": "TwoLayerNet 784-50-10, float64",
        "batch": batch,
        "params_timed": int(param.size),
        "s_per_param": per_param,
        "all_params_estimate_s": per_param * n_params,
        "backprop_s": backprop,
        "backprop_speedup": per_param * n_params / backprop,
        "params": int(n_params),
    }


def _meta(args, with_torch) -> dict:
    from dlscratch.backend import blas_info

    meta = {
        **versions(),  # dlscratch, numpy, python, platform
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "device": args.device,
        "quick": args.quick,
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }
    if with_torch:
        import importlib.metadata

        meta["torch"] = importlib.metadata.version("torch")
    return meta


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _targets(results: dict) -> list:
    rows = []
    training = results.get("training", {})
    for title, (config, fw), limit in TARGETS:
        ratio = training.get(config, {}).get(f"ratio_vs_{fw}")
        if ratio is not None:
            rows.append(_target(title, ratio["median"], limit))
    for config, limit in RSS_LIMITS_MIB.items():
        entry = training.get(config)
        ours = entry and entry["ours"]["peak_rss_mib"]
        if ours is None:
            continue
        rows.append(_target(f"({config}) peak RSS, MiB", ours, limit))
        if config == "b" and entry.get("torch", {}).get("peak_rss_mib") is not None:
            rows.append(
                _target("(b) peak RSS ours / PyTorch", ours / entry["torch"]["peak_rss_mib"], 1.0)
            )
    cnn = results.get("cnn_inference", {})
    if "ratio" in cnn and cnn["images"] == 10000:
        rows.append(_target("DeepConvNet inference ours / PyTorch", cnn["ratio"]["median"],
                            CNN_INFERENCE_LIMIT))
    inference = results.get("inference", {})
    if "one_batch_s" in inference and inference["images"] == 10000:
        rows.append(
            _target("inference, 10,000 images, s", inference["one_batch_s"], INFERENCE_LIMIT_S)
        )
    load = results.get("load_mnist", {})
    if load.get("cached_min_s") is not None:
        rows.append(_target("load_mnist cached, s", load["cached_min_s"], LOAD_CACHED_LIMIT_S))
    acc = results.get("accuracy", {})
    if acc.get("epochs") == 10 and "test_accuracy" in acc:
        rows.append(
            {
                "target": "(b) test accuracy, 10 epochs",
                "value": acc["test_accuracy"],
                "limit": ACCURACY_MIN,
                "met": acc["test_accuracy"] >= ACCURACY_MIN,
            }
        )
    return rows


def _target(title, value, limit) -> dict:
    return {"target": title, "value": value, "limit": limit, "met": value <= limit}


def run(args) -> dict:
    """Run the benchmark described by the parsed options; return the results dict."""
    quick = args.quick
    rounds = args.rounds or (1 if quick else 5)
    warmup = args.warmup if args.warmup is not None else (0 if quick else 1)
    acc_epochs = args.accuracy_epochs if args.accuracy_epochs is not None else (1 if quick else 10)
    with_torch = not args.no_torch and _torch_available()
    if args.device == "cuda":
        from dlscratch.backend import GPU_AVAILABLE

        if not GPU_AVAILABLE:
            raise ValueError(
                "--device cuda needs CuPy and an NVIDIA GPU (pip install 'dlscratch[gpu]'); "
                "run without it to benchmark the CPU"
            )
    samples = QUICK_SAMPLES if quick else 60000
    if args.batch_size > samples:
        raise ValueError(
            f"--batch-size {args.batch_size} is larger than the {samples:,} training images"
            + (" of --quick" if quick else "")
        )
    data = {
        "data_dir": str(args.data_dir) if args.data_dir else None,
        "samples": QUICK_SAMPLES if quick else None,
        "allow_synthetic": quick,
    }
    common = dict(
        threads=args.threads,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        data=data,
    )
    results = {"meta": _meta(args, with_torch)}
    results["meta"]["rounds"], results["meta"]["warmup"] = rounds, warmup
    if not with_torch:
        results["meta"]["torch_note"] = (
            "skipped (--no-torch)" if args.no_torch else "PyTorch is not installed"
        )
    results["training"] = bench_training(
        args.configs, with_torch=with_torch, rounds=rounds, warmup=warmup, **common
    )
    if acc_epochs:
        results["accuracy"] = bench_accuracy(acc_epochs, **common)
    else:
        results["accuracy"] = {"skipped": "--accuracy-epochs 0"}
    results["inference"] = bench_inference(
        args.weights, data_dir=args.data_dir, repeats=3 if quick else 20, quick=quick
    )
    results["cnn_inference"] = bench_cnn_inference(
        args.weights, data_dir=args.data_dir, repeats=1 if quick else 5, quick=quick,
        threads=args.threads, with_torch=with_torch,
    )
    results["load_mnist"] = bench_load_mnist(args.data_dir, repeats=2 if quick else 5)
    results["numerical_gradient"] = bench_numerical_gradient(quick=quick)
    results["targets"] = _targets(results)
    return results


# ============================================================================ report
def _fmt_s(entry) -> str:
    return "-" if entry is None else f"{entry['epoch_s']['median']:.3f}"


def _fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"


def _fmt_mib(entry) -> str:
    if entry is None or entry.get("peak_rss_mib") is None:
        return "-"
    return f"{entry['peak_rss_mib']:.0f}"


def format_report(results: dict) -> str:
    """The results as a plain-text table."""
    meta = results["meta"]
    lines = [
        f"dlscratch bench{' --quick' if meta['quick'] else ''}: {meta['device']}, "
        f"{meta['threads']} threads, batch {meta['batch_size']}, "
        f"{meta['rounds']} round(s) after {meta['warmup']} warm-up epoch(s); "
        f"numpy {meta['numpy']}" + (f", torch {meta['torch']}" if "torch" in meta else ""),
        f"processor: {meta['processor']} ({meta['cpus']} cpus); BLAS: "
        + (
            ", ".join(
                f"{b['internal_api']} {b['version']} {b['architecture']}" for b in meta["blas"]
            )
            or "unknown (install threadpoolctl to see)"
        ),
    ]
    if meta.get("torch_note"):
        lines.append(f"PyTorch: {meta['torch_note']}")
    lines.append("")
    header = (
        f"{'training, s/epoch (median)':<46}{'ours':>7}{'torch':>8}{'fused':>8}"
        f"  {'ours/torch':<18}{'ours/fused':<18}{'peak RSS MiB o/t/f':>20}"
    )
    lines += [header, "-" * len(header)]
    for entry in results["training"].values():
        rss = " / ".join(_fmt_mib(entry.get(fw)) for fw in FRAMEWORKS)
        lines.append(
            f"{entry['title']:<46}{_fmt_s(entry['ours']):>7}{_fmt_s(entry.get('torch')):>8}"
            f"{_fmt_s(entry.get('torch_fused')):>8}  {_fmt_ratio(entry.get('ratio_vs_torch')):<18}"
            f"{_fmt_ratio(entry.get('ratio_vs_torch_fused')):<18}{rss:>20}"
        )
    data_sources = {e["data"] for e in results["training"].values()}
    lines.append(f"data: {', '.join(sorted(data_sources))}; ratios: median (min-max) over rounds")
    lines.append("")

    acc = results["accuracy"]
    if "skipped" in acc:
        lines.append(f"accuracy: skipped ({acc['skipped']})")
    else:
        lines.append(
            f"accuracy: (b) after {acc['epochs']} epoch(s): test accuracy "
            f"{acc['test_accuracy']:.4f} ({acc['seconds']:.1f} s of training)"
        )
    inf = results["inference"]
    if "skipped" in inf:
        lines.append(f"inference: skipped ({inf['skipped']})")
    else:
        lines.append(
            f"inference: pretrained 784-50-100-10 on {inf['images']:,} images: "
            f"{inf['one_batch_s'] * 1e3:.1f} ms in one batch "
            f"({inf['images_per_s']:,.0f} images/s), "
            f"{inf['batches_of_100_s'] * 1e3:.1f} ms in batches of 100; "
            f"accuracy {inf['accuracy']:.4f}"
        )
    cnn = results.get("cnn_inference", {"skipped": "not measured"})
    if "skipped" in cnn:
        lines.append(f"DeepConvNet inference: skipped ({cnn['skipped']})")
    else:
        parts = [
            f"{name} {cnn[name]['s']['median']:.2f} s (accuracy {cnn[name]['accuracy']:.4f})"
            for name in ("ours", "torch") if name in cnn
        ]
        ratio = f"; ours / torch {_fmt_ratio(cnn['ratio'])}" if "ratio" in cnn else ""
        lines.append(
            f"DeepConvNet inference, {cnn['images']:,} images by 100: {', '.join(parts)}{ratio}"
        )
    load = results["load_mnist"]
    if "skipped" in load:
        lines.append(f"load_mnist: skipped ({load['skipped']})")
    else:
        lines.append(
            f"load_mnist: cached {load['cached_median_s']:.3f} s "
            f"(median of {load['repeats']})"
        )
    ng = results["numerical_gradient"]
    lines.append(
        f"numerical gradient: {ng['s_per_param'] * 1e6:.1f} us per parameter "
        f"({ng['network']}, batch {ng['batch']}); all {ng['params']:,} parameters "
        f"~{ng['all_params_estimate_s']:.1f} s vs backprop {ng['backprop_s'] * 1e3:.2f} ms "
        f"({ng['backprop_speedup']:,.0f}x)"
    )
    if results["targets"]:
        lines += ["", "targets:"]
        for row in results["targets"]:
            verdict = "met" if row["met"] else "NOT met"
            bound = ">=" if row["target"].endswith("accuracy, 10 epochs") else "<="
            lines.append(
                f"  {row['target']:<36} {row['value']:.3f} ({bound} {row['limit']:g}): {verdict}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlscratch.bench",
        description="Time training, inference, data loading and numerical gradients "
        "(beside PyTorch when installed).",
    )
    add_arguments(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker))
    return report(args)


def report(args) -> int:
    """Run, print the table, write the JSON; the body of ``dlscratch bench``."""
    results = run(args)
    print(format_report(results))
    if args.json:
        from dlscratch.fileio import write_json

        write_json(args.json, results)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
