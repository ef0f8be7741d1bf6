"""SimpleConvNet and DeepConvNet: gradients, input shapes, saving, the book's trained weights."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dlscratch.book_weights import identify_book_weights, load_book_network
from dlscratch.gradient import gradient_check
from dlscratch.io import load_model, read_book_pickle, save_model
from dlscratch.nets import NETWORKS, DeepConvNet, SimpleConvNet, build_network
from shared_data import HAVE_MNIST, SHARED

WEIGHTS = SHARED / "weights"
SIMPLE_PKL = WEIGHTS / "simple_convnet_params.pkl"
DEEP_PKL = WEIGHTS / "deep_convnet_params.pkl"
have_cnn_weights = pytest.mark.skipif(
    not (SIMPLE_PKL.is_file() and DEEP_PKL.is_file()), reason=f"book CNN weights not in {WEIGHTS}"
)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST files not found")

#: The DeepConvNet's structure (six 3x3 convs, the fourth with pad 2) with few filters.
TINY_DEEP = [
    {"filter_num": n, "filter_size": 3, "pad": p, "stride": 1}
    for n, p in [(2, 1), (2, 1), (3, 1), (3, 2), (4, 1), (4, 1)]
]


def _nonzero_biases(net, rng):
    """Zero biases put ReLU inputs exactly on the kink (padding-only windows); move them off."""
    for name, p in net.params.items():
        if name.startswith("b"):
            p[...] = rng.uniform(0.05, 0.2, p.shape)


def tiny_simple(dtype=np.float64, **kw):
    return SimpleConvNet(
        input_dim=(2, 8, 8),
        conv_param={"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
        hidden_size=5,
        output_size=4,
        weight_init_std=0.3,
        dtype=dtype,
        rng=0,
        **kw,
    )


def test_simple_convnet_shapes_and_names():
    net = SimpleConvNet(rng=0)
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {
        "W1": (30, 1, 5, 5),
        "b1": (30,),
        "W2": (4320, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert net.params["W1"].dtype == np.float32 and net.input_size == 784
    assert net.params["W1"].std() == pytest.approx(0.01, rel=0.1)
    assert net.layers["Conv1"].W is net.params["W1"]


def test_deep_convnet_shapes_and_names():
    net = DeepConvNet(rng=0)
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes["W1"] == (16, 1, 3, 3) and shapes["W4"] == (32, 32, 3, 3)
    assert shapes["W6"] == (64, 64, 3, 3) and shapes["W7"] == (1024, 50)
    assert shapes["W8"] == (50, 10) and list(shapes)[-1] == "b8" and len(shapes) == 16
    assert net.layers["Conv4"].pad == 2
    # He: std sqrt(2 / fan_in), fan_in = C * 3 * 3 for a convolution
    assert net.params["W6"].std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)
    assert net.params["W7"].std() == pytest.approx(np.sqrt(2 / 1024), rel=0.05)


def test_gradient_check_simple_convnet():
    rng = np.random.default_rng(1)
    net = tiny_simple()
    _nonzero_biases(net, rng)
    x, t = rng.random((3, 128)), np.array([0, 3, 1])
    result = gradient_check(net, x, t)
    assert result.passed, str(result)


def test_gradient_check_deep_convnet_with_dropout_fixed():
    rng = np.random.default_rng(2)
    net = DeepConvNet(
        input_dim=(1, 12, 12),
        conv_params=TINY_DEEP,
        hidden_size=6,
        output_size=3,
        dtype=np.float64,
        rng=0,
    )
    _nonzero_biases(net, rng)
    x, t = rng.random((2, 1, 12, 12)), np.array([0, 2])
    # h = 1e-5: with h = 1e-4 a nudge can carry some ReLU input or pooling tie across its
    # kink, where the numerical derivative is meaningless (backprop's is the exact one).
    result = gradient_check(net, x, t, h=1e-5)
    assert result.passed, str(result)
    # the dropout masks were frozen for the check and are released afterwards
    assert not net.layers["Dropout1"].frozen


def test_flat_and_image_input_agree():
    rng = np.random.default_rng(3)
    for net in (tiny_simple(), DeepConvNet(input_dim=(1, 12, 12), conv_params=TINY_DEEP, rng=0)):
        C, H, W = net.input_dim
        x = rng.random((4, C, H, W)).astype(net.dtype)
        np.testing.assert_array_equal(net.predict(x), net.predict(x.reshape(4, -1)))
        np.testing.assert_array_equal(net.predict(x), net.predict(x.reshape(4, C * H * W, 1)))
        assert net.accuracy(x, np.zeros(4, int)) == net.accuracy(x.reshape(4, -1), np.zeros(4, int))
    mnist = SimpleConvNet(rng=0)
    u8 = rng.integers(0, 256, (2, 784), dtype=np.uint8)
    assert mnist.predict(u8).shape == (2, 10)
    with pytest.raises(
        ValueError, match=r"expects images of shape \(N, 1, 28, 28\), got \(2, 1, 14, 56\)"
    ):
        mnist.predict(u8.reshape(2, 1, 14, 56))
    with pytest.raises(ValueError, match="expects 784 input features"):
        mnist.predict(rng.random((2, 100)))


def test_configs_rebuild_and_models_round_trip(tmp_path):
    assert NETWORKS["SimpleConvNet"] is SimpleConvNet and NETWORKS["DeepConvNet"] is DeepConvNet
    rng = np.random.default_rng(4)
    nets = [
        tiny_simple(dtype=np.float32, weight_decay_lambda=0.01),
        DeepConvNet(
            input_dim=(1, 12, 12),
            conv_params=TINY_DEEP,
            hidden_size=7,
            dropout_scale="book",
            rng=0,
        ),
    ]
    for net in nets:
        for p in net.params.values():
            p[...] = rng.standard_normal(p.shape)
        rebuilt = build_network(net.get_config())
        assert type(rebuilt) is type(net) and rebuilt.get_config() == net.get_config()
        assert {k: v.shape for k, v in rebuilt.params.items()} == {
            k: v.shape for k, v in net.params.items()
        }
        path = save_model(tmp_path / type(net).__name__, net)
        loaded = load_model(path)
        assert loaded.get_config() == net.get_config()
        x = rng.random((3, *net.input_dim)).astype(np.float32)
        np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
        for name, value in net.state_dict().items():
            np.testing.assert_array_equal(loaded.state_dict()[name], value)
    assert "book" in repr(nets[1].layers["Dropout1"])


def test_training_step_and_state_keep_flat_buffers():
    from dlscratch.optim import Adam

    rng = np.random.default_rng(5)
    net = tiny_simple(dtype=np.float32)
    x, t = rng.random((8, 128), dtype=np.float32), rng.integers(0, 4, 8)
    opt = Adam(lr=0.01)
    losses = []
    for _ in range(30):
        opt.update(net.params, net.gradient(x, t))
        losses.append(net.loss(x, t))
    assert losses[-1] < 0.5 * losses[0]
    assert net.params.is_intact()  # the layers still use views of one flat buffer


def test_book_dropout_only_rescales_at_test_time():
    rng = np.random.default_rng(6)
    kw = dict(input_dim=(1, 12, 12), conv_params=TINY_DEEP, hidden_size=5, rng=0)
    book, inverted = DeepConvNet(dropout_scale="book", **kw), DeepConvNet(**kw)
    inverted.load_state_dict(book.state_dict())
    x = rng.random((3, 144), dtype=np.float32)
    # book: y = 0.5 * (0.5 * relu(a7) @ W8 + b8)
    W8, b8 = inverted.params["W8"], inverted.params["b8"]
    inverted.params["W8"][...] = 0.25 * W8
    inverted.params["b8"][...] = 0.5 * b8
    np.testing.assert_allclose(book.predict(x), inverted.predict(x), rtol=1e-5)
    with pytest.raises(ValueError, match="dropout_scale must be one of"):
        DeepConvNet(dropout_scale="half")


def test_bad_configurations():
    with pytest.raises(ValueError, match="input_dim must be"):
        SimpleConvNet(input_dim=(28, 28))
    with pytest.raises(ValueError, match="unknown key"):
        SimpleConvNet(conv_param={"filters": 3})
    with pytest.raises(ValueError, match="stride 2 does not tile the convolution output"):
        SimpleConvNet(conv_param={"filter_num": 3, "filter_size": 4})  # 25x25 before the pool
    with pytest.raises(ValueError, match="six dicts"):
        DeepConvNet(conv_params=TINY_DEEP[:5])


# -- the book's trained weights --------------------------------------------------------------------
@have_cnn_weights
def test_identify_book_weights_by_names_and_shapes():
    assert identify_book_weights(read_book_pickle(SIMPLE_PKL)) == "simple_convnet"
    assert identify_book_weights(read_book_pickle(DEEP_PKL)) == "deep_convnet"
    sample = read_book_pickle(WEIGHTS / "sample_weight.pkl")
    assert identify_book_weights(sample) == "mlp"
    arrays = read_book_pickle(SIMPLE_PKL)
    arrays["W2"] = arrays["W2"][:100]
    with pytest.raises(
        ValueError, match=r"match none of the book's networks: found W1 \(30, 1, 5, 5\)"
    ):
        identify_book_weights(arrays)


@have_cnn_weights
def test_load_book_network_builds_the_right_networks(tmp_path):
    simple = load_book_network(SIMPLE_PKL)
    deep = load_book_network(DEEP_PKL)
    assert isinstance(simple, SimpleConvNet) and simple.dtype == np.float64
    assert isinstance(deep, DeepConvNet) and deep.dropout_scale == "book"
    np.testing.assert_array_equal(deep.params["W4"], read_book_pickle(DEEP_PKL)["W4"])
    renamed = tmp_path / "weights.pkl"  # recognised by content, not by file name
    renamed.write_bytes(SIMPLE_PKL.read_bytes())
    assert isinstance(load_book_network(renamed, dtype=np.float32), SimpleConvNet)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"W1": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match="bad.pkl: these arrays match none"):
        load_book_network(bad)


@pytest.mark.slow
@needs_mnist
@have_cnn_weights
def test_book_cnn_weights_test_accuracy(capsys):
    """The accuracies the book's own network definitions give with these files on MNIST.

    Checked against an independent einsum implementation of the book's networks
    (float64) while writing this test: 9600 and 9797 of the 10,000 test images;
    float32 gives the same counts.
    """
    from dlscratch.cli import main
    from dlscratch.data import load_mnist

    assert main(["infer", "--weights", str(SIMPLE_PKL), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "SimpleConvNet: Conv 30x5x5 - Pool 2x2 - Relu - Affine 4320->100" in out
    assert "9600/10000    0.9600" in out
    _, (x, t) = load_mnist(normalize=True, flatten=True)
    deep = load_book_network(DEEP_PKL, dtype=np.float32)
    assert deep.accuracy(x, t) == 0.9797


def test_cuda_matches_cpu():
    from dlscratch.backend import GPU_AVAILABLE, to_numpy

    if not GPU_AVAILABLE:
        pytest.skip("needs CuPy and an NVIDIA GPU")
    rng = np.random.default_rng(7)
    cpu = DeepConvNet(input_dim=(1, 12, 12), conv_params=TINY_DEEP, dtype=np.float64, rng=0)
    gpu = DeepConvNet(
        input_dim=(1, 12, 12), conv_params=TINY_DEEP, dtype=np.float64, rng=0, device="cuda"
    )
    x, t = rng.random((4, 144)), rng.integers(0, 10, 4)
    import cupy

    np.testing.assert_allclose(to_numpy(gpu.predict(cupy.asarray(x))), cpu.predict(x), rtol=1e-10)
    g_cpu = {k: v.copy() for k, v in cpu.gradient(x, t).items()}
    g_gpu = gpu.gradient(cupy.asarray(x), cupy.asarray(t))
    for name, g in g_cpu.items():
        np.testing.assert_allclose(to_numpy(g_gpu[name]), g, rtol=1e-8, atol=1e-12)


def test_convolutional_networks_are_evaluated_in_small_batches():
    """im2col columns grow with the batch: the Trainer and `evaluate` take 100 images at a
    time for a CNN (DeepConvNet on 10,000 images: 2.0 GB above its weights at 1000 per
    pass, 0.25 GB at 100), 1000 for a fully connected network."""
    from dlscratch import Adam, MultiLayerNet, Trainer

    x = np.zeros((10, 784), np.float32)
    t = np.zeros(10, np.int64)
    cnn = Trainer(SimpleConvNet(hidden_size=4, rng=0), Adam(), x, t, batch_size=5)
    mlp = Trainer(MultiLayerNet(784, [4], 10, rng=0), Adam(), x, t, batch_size=5)
    assert (cnn.eval_batch_size, mlp.eval_batch_size) == (100, 1000)
    assert Trainer(SimpleConvNet(rng=0), Adam(), x, t, batch_size=5,
                   eval_batch_size=7).eval_batch_size == 7


@pytest.mark.parametrize("net_class", [SimpleConvNet, DeepConvNet])
def test_pool_before_relu_is_the_books_relu_before_pool(net_class):
    """The networks pool before the ReLU; built in the book's order (pool_before_relu =
    False) from the same seed they give the same scores, loss and gradients, also on
    MNIST-like input whose blank border makes many exact ties inside pooling windows."""
    from dlscratch.layers import Pooling, Relu

    class BookOrder(net_class):
        pool_before_relu = False

    kw = {"dtype": np.float64, "rng": 1}
    if net_class is SimpleConvNet:
        kw.update(conv_param={"filter_num": 4, "filter_size": 5}, hidden_size=6)
    else:
        kw.update(dropout_ratio=0.0)
    ours, book = net_class(**kw), BookOrder(**kw)
    for net, first in ((ours, Pooling), (book, Relu)):
        names = list(net.layers)
        pools = [i for i, name in enumerate(names) if name.startswith("Pool")]
        assert pools and all(isinstance(net.layers[names[i]], Pooling) for i in pools)
        before = [type(net.layers[names[i - 1]]) for i in pools]
        after = [type(net.layers[names[i + 1]]) for i in pools]
        assert (after if first is Pooling else before) == [Relu] * len(pools)
    rng = np.random.default_rng(5)
    x = np.zeros((4, 1, 28, 28))
    x[:, :, 8:20, 6:22] = rng.random((4, 1, 12, 16))
    t = np.array([3, 1, 4, 1])
    np.testing.assert_array_equal(ours.predict(x), book.predict(x))
    g_ours, g_book = ours.gradient(x, t), book.gradient(x, t)
    assert ours.last_loss == book.last_loss
    assert set(g_ours) == set(g_book)
    for key in g_ours:
        np.testing.assert_array_equal(g_ours[key], g_book[key], err_msg=key)
