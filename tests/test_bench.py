"""The benchmark (a smoke run) and the machinery that makes training fast.

The speed figures themselves are not asserted anywhere: they belong to
``dlscratch bench``. What is tested here is that the fast paths compute
exactly what the plain ones do.
"""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from dlscratch import MultiLayerNet, TwoLayerNet
from dlscratch.backend import GPU_AVAILABLE
from dlscratch.bench import CONFIGS, _configs, _spread, format_report
from dlscratch.cli import main as cli_main
from dlscratch.layers import Affine, Dropout
from dlscratch.nets import FlatDict
from dlscratch.optim import FLUSH_EVERY, OPTIMIZERS, Adam, get_optimizer
from shared_data import HAVE_MNIST, HAVE_WEIGHTS


# -- the benchmark ------------------------------------------------------------------------
def test_quick_run_reports_every_section(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli_main(["bench", "--quick", "--no-torch", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text())

    assert set(results) == {
        "meta",
        "training",
        "accuracy",
        "inference",
        "cnn_inference",
        "load_mnist",
        "numerical_gradient",
        "targets",
    }
    assert results["meta"]["quick"] is True and results["meta"]["threads"] == 2
    assert list(results["training"]) == list(CONFIGS)
    for entry in results["training"].values():
        assert entry["title"] in table
        ours = entry["ours"]
        assert ours["epoch_s"]["median"] > 0
        assert ours["peak_rss_mib"] > 0
        assert np.isfinite(ours["last_loss"])
        assert "torch" not in entry  # --no-torch
    assert 0 <= results["accuracy"]["test_accuracy"] <= 1
    ng = results["numerical_gradient"]
    assert ng["params"] == 784 * 50 + 50 + 50 * 10 + 10
    assert ng["s_per_param"] > 0 and ng["backprop_speedup"] > 1
    assert "(e) SimpleConvNet" in table and "DeepConvNet inference" in table
    for section in ("inference", "cnn_inference", "load_mnist"):  # measured, or skipped
        assert results[section].get("skipped") or len(results[section]) > 2
    if HAVE_MNIST:  # with the data at hand nothing may be skipped
        assert "skipped" not in results["load_mnist"], results["load_mnist"]
        assert 0 < results["load_mnist"]["cached_min_s"] and "load_mnist: cached" in table
    if HAVE_MNIST:
        cnn = results["cnn_inference"]
        assert cnn["images"] == 1000 and cnn["ours"]["s"]["median"] > 0
        assert "torch" not in cnn and "ratio" not in cnn  # --no-torch
    if HAVE_MNIST and HAVE_WEIGHTS:
        assert results["cnn_inference"]["ours"]["accuracy"] > 0.95  # the book's weights
        inference = results["inference"]
        assert "skipped" not in inference, inference
        assert inference["images"] == 1000 and inference["accuracy"] > 0.9
    assert "training, s/epoch" in table and "numerical gradient" in table


def test_quick_run_beside_pytorch(tmp_path):
    pytest.importorskip("torch")
    from dlscratch.bench import main

    out = tmp_path / "bench.json"
    args = ["--quick", "--configs", "b,e", "--accuracy-epochs", "0", "--json", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())
    for config in ("b", "e"):
        entry = results["training"][config]
        for fw in ("torch", "torch_fused"):
            assert entry[fw]["epoch_s"]["median"] > 0 and entry[fw]["peak_rss_mib"] > 0
            ratio = entry[f"ratio_vs_{fw}"]
            assert ratio["min"] <= ratio["median"] <= ratio["max"]
    cnn = results["cnn_inference"]
    if HAVE_MNIST:
        assert cnn["ratio"]["median"] > 0
    if HAVE_MNIST and HAVE_WEIGHTS:
        # the same network with the same weights: the same answers on 1,000 test images
        assert cnn["ours"]["accuracy"] == cnn["torch"]["accuracy"] > 0.95


def test_module_entry_point_and_option_errors():
    run = subprocess.run(
        [sys.executable, "-m", "dlscratch.bench", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "--quick" in run.stdout
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "--configs", "b,x"])
    assert exc.value.code == 2


def test_bad_values_are_clear_errors(capsys):
    assert cli_main(["bench", "--quick", "--batch-size", "5000"]) == 2
    assert "larger than the 1,000 training images" in capsys.readouterr().err
    if not GPU_AVAILABLE:
        assert cli_main(["bench", "--device", "cuda"]) == 2
        assert "needs CuPy and an NVIDIA GPU" in capsys.readouterr().err


def test_option_parsing_and_summary():
    assert _configs("b, a,b") == ("b", "a")
    s = _spread([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)
    assert "targets" not in format_report(
        {
            "meta": {
                "quick": True,
                "device": "cpu",
                "threads": 1,
                "batch_size": 100,
                "rounds": 1,
                "warmup": 0,
                "numpy": np.__version__,
                "processor": "cpu",
                "cpus": 1,
                "blas": [],
            },
            "training": {},
            "accuracy": {"skipped": "no"},
            "inference": {"skipped": "no"},
            "load_mnist": {"skipped": "no"},
            "numerical_gradient": {
                "s_per_param": 1e-4,
                "network": "n",
                "batch": 1,
                "params": 10,
                "all_params_estimate_s": 1e-3,
                "backprop_s": 1e-5,
                "backprop_speedup": 100.0,
            },
            "targets": [],
        }
    )


# -- flat parameter and gradient buffers --------------------------------------------------
def _batch(rng, n=8, d=6, c=3):
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, c, n)


def test_params_and_grads_are_views_of_flat_buffers(rng):
    net = MultiLayerNet(6, [5, 4], 3, use_batchnorm=True, rng=0)
    x, t = _batch(rng)
    assert isinstance(net.params, FlatDict) and net.params.is_intact()
    flat = net.flat_params
    assert flat.dtype == np.float32 and flat.ndim == 1
    assert flat.size >= sum(p.size for p in net.params.values())
    for name, p in net.params.items():
        assert np.shares_memory(p, flat), name
        assert p.ctypes.data % 64 == 0, name  # every array starts on a cache line
    net.flat_params[:] = 0.5  # one write reaches every layer
    assert np.all(net.layers["Affine2"].params["W"] == 0.5)
    grads = net.gradient(x, t, reuse=True)  # the Trainer's fast path: the network's buffers
    assert isinstance(grads, FlatDict) and list(grads) == list(net.params)
    for name, g in grads.items():
        assert g.dtype == np.float32 and np.shares_memory(g, net.flat_grads), name
    owned = net.gradient(x, t)  # the default: arrays the caller owns
    for name, g in owned.items():
        assert not np.shares_memory(g, net.flat_grads), name
        np.testing.assert_array_equal(g, grads[name])
    # the first layer skips the gradient with respect to the data
    assert net.layers["Affine1"].input_grad is False
    assert net.layers["Affine1"].backward(np.ones((8, 5), np.float32)) is None


def test_standalone_affine_still_returns_fresh_arrays(rng):
    layer = Affine(rng.standard_normal((3, 2)), np.zeros(2))
    layer.forward(rng.standard_normal((4, 3)))
    dx = layer.backward(np.ones((4, 2)))
    first = layer.grads["W"]
    layer.backward(2 * np.ones((4, 2)))
    assert dx.shape == (4, 3) and layer.grads["W"] is not first
    np.testing.assert_allclose(layer.grads["W"], 2 * first)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_update_equals_per_array_update(name, rng):
    kwargs = dict(use_batchnorm=True, use_dropout=True, dropout_ratio=0.3, weight_decay_lambda=0.01)
    fast, slow = (MultiLayerNet(6, [5, 4], 3, rng=7, **kwargs) for _ in range(2))
    opt_fast, opt_slow = get_optimizer(name, lr=0.05), get_optimizer(name, lr=0.05)
    for _ in range(5):
        x, t = _batch(rng)
        opt_fast.update(fast.params, fast.gradient(x, t))
        # plain dicts: the optimizer cannot see the flat buffers and goes array by array
        opt_slow.update(dict(slow.params), dict(slow.gradient(x, t)))
    for k in fast.params:
        np.testing.assert_array_equal(fast.params[k], slow.params[k])
        assert fast.params[k].dtype == np.float32
    state_fast, state_slow = opt_fast.state_dict(), opt_slow.state_dict()
    for slot, bufs in state_slow["state"].items():
        assert set(state_fast["state"][slot]) == set(fast.params)
        for k, a in bufs.items():
            np.testing.assert_array_equal(state_fast["state"][slot][k], a)


def test_assigning_a_parameter_writes_into_the_live_network(rng, tmp_path):
    from dlscratch.io import load_model, save_model

    net = MultiLayerNet(6, [5], 3, rng=0)
    opt = Adam(lr=0.1)
    x, t = _batch(rng)
    new_w = rng.standard_normal((6, 5))  # float64: cast to the network's float32
    net.params["W1"] = new_w
    assert net.params.is_intact()
    np.testing.assert_array_equal(net.layers["Affine1"].params["W"], new_w.astype(np.float32))
    fresh = MultiLayerNet(6, [5], 3, rng=0)
    fresh.layers["Affine1"].params["W"][...] = new_w
    np.testing.assert_array_equal(net.predict(x), fresh.predict(x))  # predict sees it
    before = net.params["W1"].copy()
    opt.update(net.params, net.gradient(x, t))
    assert not np.array_equal(net.layers["Affine1"].params["W"], before)  # training sees it
    np.testing.assert_array_equal(net.state_dict()["W1"], net.layers["Affine1"].params["W"])
    save_model(tmp_path / "m.npz", net)
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").predict(x), net.predict(x))


@pytest.mark.parametrize(
    "name, value, error, message",
    [
        ("W1", np.zeros((5, 6)), ValueError, r"shape \(6, 5\).*shape \(5, 6\)"),
        ("W1", np.full((6, 5), np.nan), ValueError, "NaN or infinity"),
        ("W1", np.full((6, 5), 1e300), ValueError, "after the cast to float32"),
        ("W1", np.zeros((6, 5), complex), TypeError, "real numbers"),
        ("W9", np.zeros((6, 5)), KeyError, "no parameter 'W9'"),
    ],
)
def test_assigning_a_bad_parameter_is_refused_and_changes_nothing(name, value, error, message):
    net = MultiLayerNet(6, [5], 3, rng=0)
    before = net.state_dict()
    with pytest.raises(error, match=message):
        net.params[name] = value
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_gradients_from_two_calls_are_independent(rng):
    net = MultiLayerNet(6, [5], 3, rng=0)
    (x1, t1), (x2, t2) = _batch(rng), _batch(rng)
    g1 = net.gradient(x1, t1)
    kept = {k: v.copy() for k, v in g1.items()}
    g2 = net.gradient(x2, t2)
    assert g1 is not g2
    for k in g1:
        np.testing.assert_array_equal(g1[k], kept[k])  # the second call changed nothing
    total = {k: g1[k] + g2[k] for k in g1}  # accumulating over batches works
    for k in total:
        np.testing.assert_allclose(total[k], kept[k] + g2[k])


def test_python_and_numpy_scalars_keep_float32(rng):
    net = TwoLayerNet(6, 5, 3, rng=0)
    x, t = _batch(rng)
    for name in OPTIMIZERS:
        opt = get_optimizer(name)
        opt.lr = np.float64(0.01)  # as a schedule might set it
        opt.update(net.params, net.gradient(x, t))
        assert net.flat_params.dtype == np.float32
        assert all(p.dtype == np.float32 for p in net.params.values())
        assert all(a.dtype == np.float32 for s in opt.state.values() for a in s.values())


def test_deepcopy_gives_an_independent_network_that_trains_alike(rng):
    net = MultiLayerNet(6, [5], 3, use_batchnorm=True, rng=0)
    twin = copy.deepcopy(net)
    assert twin.params.is_intact() and not np.shares_memory(twin.flat_params, net.flat_params)
    opt_a, opt_b = Adam(lr=0.1), Adam(lr=0.1)
    for _ in range(3):
        x, t = _batch(rng)
        opt_a.update(net.params, net.gradient(x, t))
        opt_b.update(twin.params, twin.gradient(x, t))
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], twin.params[k])
        np.testing.assert_array_equal(twin.layers["Affine1"].params["W"], twin.params["W1"])


def test_state_of_resumed_optimizer_is_repacked(rng):
    net = MultiLayerNet(6, [5], 3, rng=0)
    opt = Adam(lr=0.01)
    x, t = _batch(rng)
    opt.update(net.params, net.gradient(x, t))
    resumed = Adam()
    resumed.load_state_dict(opt.state_dict())
    copy_net = copy.deepcopy(net)
    opt.update(net.params, net.gradient(x, t))
    resumed.update(copy_net.params, copy_net.gradient(x, t))
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], copy_net.params[k])
    assert all(np.shares_memory(m, resumed._flat_state["m"]) for m in resumed.state["m"].values())


def test_adam_state_never_becomes_subnormal():
    params = {"W": np.ones(4, np.float32)}
    opt = Adam(lr=1e-3)
    opt.update(params, {"W": np.full(4, 1e-3, np.float32)})
    zero = {"W": np.zeros(4, np.float32)}
    for _ in range(2 * FLUSH_EVERY * 10):  # m shrinks by 0.9 a step: 1e-4 * 0.9**2000 << 1e-45
        opt.update(params, zero)
        m = opt.state["m"]["W"]
        assert not np.any((m != 0) & (np.abs(m) < np.finfo(np.float32).tiny))
    assert np.all(opt.state["m"]["W"] == 0)


# -- other speed-motivated details --------------------------------------------------------
def test_infinite_input_is_caught_even_where_sigmoid_would_hide_it():
    net = TwoLayerNet(4, 3, 2, rng=0)
    x = np.zeros((2, 4), np.float32)
    x[0, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.gradient(x, np.array([0, 1]))
    huge = np.full((2, 4), 3e38, np.float32)  # finite, although its row sums overflow
    with np.errstate(over="ignore", invalid="ignore"):
        net.predict(huge)


def test_integer_input_is_cast_without_check():
    net = MultiLayerNet(4, [3], 2, rng=0)
    x = np.arange(8, dtype=np.uint8).reshape(2, 4)
    np.testing.assert_allclose(net.predict(x), net.predict(x.astype(np.float32)))


def test_dropout_drop_rate_matches_ratio():
    x = np.ones((400, 500), np.float32)
    for ratio in (0.1, 0.5, 0.8):
        y = Dropout(ratio, rng=0).forward(x, train=True)
        assert y.dtype == np.float32
        assert (y == 0).mean() == pytest.approx(ratio, abs=0.005)
        np.testing.assert_allclose(y[y != 0], 1 / (1 - ratio), rtol=1e-6)
