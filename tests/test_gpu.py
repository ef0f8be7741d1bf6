"""The GPU path (CuPy): the same networks and optimizers on CUDA arrays.

Skipped without CuPy or without a usable NVIDIA GPU.
"""

import json

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

from dlscratch.backend import GPU_AVAILABLE, get_array_module, to_numpy  # noqa: E402
from dlscratch.nets import MultiLayerNet  # noqa: E402
from dlscratch.optim import OPTIMIZERS, get_optimizer  # noqa: E402

pytestmark = pytest.mark.skipif(not GPU_AVAILABLE, reason="needs CuPy and an NVIDIA GPU")

CONFIG = dict(use_batchnorm=True, use_dropout=True, dropout_ratio=0.3)


def _batch(rng, n=16):
    return rng.standard_normal((n, 12)), rng.integers(0, 4, n)


def test_network_lives_on_the_gpu(rng):
    net = MultiLayerNet(12, [10, 8], 4, rng=0, device="cuda", **CONFIG)
    assert get_array_module(net.flat_params) is cupy
    assert all(isinstance(p, cupy.ndarray) for p in net.params.values())
    x, t = _batch(rng)
    grads = net.gradient(cupy.asarray(x, dtype=cupy.float32), cupy.asarray(t))
    assert all(isinstance(g, cupy.ndarray) and g.dtype == cupy.float32 for g in grads.values())


def test_gradients_match_the_cpu(rng):
    cpu = MultiLayerNet(12, [10, 8], 4, rng=3, dtype=np.float64, **CONFIG)
    gpu = MultiLayerNet(12, [10, 8], 4, rng=3, dtype=np.float64, device="cuda", **CONFIG)
    x, t = _batch(rng)
    g_cpu = cpu.gradient(x, t)  # same seed: same weights and the same dropout masks
    g_gpu = gpu.gradient(cupy.asarray(x), cupy.asarray(t))
    for name in g_cpu:
        np.testing.assert_allclose(to_numpy(g_gpu[name]), g_cpu[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_match_the_cpu(name, rng):
    cpu = MultiLayerNet(12, [10], 4, rng=1, dtype=np.float64)
    gpu = MultiLayerNet(12, [10], 4, rng=1, dtype=np.float64, device="cuda")
    opt_cpu, opt_gpu = get_optimizer(name, lr=0.01), get_optimizer(name, lr=0.01)
    for _ in range(3):
        x, t = _batch(rng)
        opt_cpu.update(cpu.params, cpu.gradient(x, t))
        opt_gpu.update(gpu.params, gpu.gradient(cupy.asarray(x), cupy.asarray(t)))
    for k in cpu.params:
        np.testing.assert_allclose(to_numpy(gpu.params[k]), cpu.params[k], rtol=1e-7, atol=1e-10)


def test_training_reduces_the_loss_and_state_comes_back(rng):
    net = MultiLayerNet(12, [32], 4, rng=0, device="cuda")
    opt = get_optimizer("adam", lr=0.01)
    x = cupy.asarray(rng.standard_normal((64, 12)), dtype=cupy.float32)
    t = cupy.asarray((to_numpy(x)[:, 0] > 0).astype(np.int64) + 2 * (to_numpy(x)[:, 1] > 0))
    first = net.loss(x, t)
    for _ in range(50):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < 0.5 * first
    cpu = MultiLayerNet(12, [32], 4, rng=5)
    cpu.load_state_dict(net.state_dict())
    np.testing.assert_allclose(cpu.predict(to_numpy(x)), to_numpy(net.predict(x)), atol=1e-4)


def test_bench_quick_on_the_gpu(tmp_path):
    from dlscratch.bench import main

    out = tmp_path / "bench.json"
    args = ["--quick", "--device", "cuda", "--no-torch", "--configs", "b,d", "--json", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert results["meta"]["device"] == "cuda"
    assert results["training"]["b"]["ours"]["epoch_s"]["median"] > 0


def test_trainer_keeps_the_training_set_on_the_gpu_and_learns(rng):
    from dlscratch.training import Trainer

    x = rng.integers(0, 256, size=(600, 12), dtype=np.uint8)
    t = (x[:, 0] > 127).astype(np.int64) + 2 * (x[:, 1] > 127)
    net = MultiLayerNet(12, [32], 4, rng=0, device="cuda")
    trainer = Trainer(net, get_optimizer("adam", lr=0.01), x, t, epochs=5, batch_size=50, rng=0)
    history = trainer.fit()
    device, x_gpu, t_gpu = trainer._device_data
    assert device == "cuda" and isinstance(x_gpu, cupy.ndarray) and x_gpu.dtype == cupy.uint8
    assert history.train_acc[-1] > 0.9 and history.train_loss[-1] < history.train_loss[0]


def test_train_command_on_the_gpu(tmp_path):
    from dlscratch.cli import main

    out = tmp_path / "run"
    argv = ["train", "--device", "cuda", "--limit", "2000", "--epochs", "1", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hardware"]["device"] == "cuda" and metrics["final"]["test_acc"] > 0.8
