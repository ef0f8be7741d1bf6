"""Inference channels-last (dlscratch.nets.channels_last) gives the layers' own numbers.

Networks predict through that module when the compiled loops are on; the
reference is every layer's ``forward(x, train=False)`` in turn with NumPy's code
(``kernels.use(False)``), the book's layout throughout. The two add each
convolution's products in a different order, so they agree to rounding: 1e-12
relative in float64, 1e-5 in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlscratch import kernels
from dlscratch.backend import set_num_threads
from dlscratch.layers import Affine, Convolution, Dropout, Flatten, Pooling, Relu
from dlscratch.layers.leaky_relu import LeakyReLU
from dlscratch.nets import DeepConvNet, SimpleConvNet, channels_last

pytestmark = pytest.mark.skipif(
    not kernels.available, reason="Numba is not installed (pip install 'dlscratch[fast]')"
)

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def layer_by_layer(layers, x):
    """The reference: each layer's own forward, NumPy's code."""
    with kernels.use(False):
        for layer in layers:
            x = layer.forward(x, train=False)
    return x


def assert_close(got, want, dtype):
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype] * scale)


def conv(rng, FN, C, FH, FW, dtype, **kw):
    W = rng.standard_normal((FN, C, FH, FW)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    return Convolution(W, b, **kw)


def run_both_ways(layers, x, dtype, run):
    """channels_last.forward, after checking it takes ``run`` leading layers, against
    the layers' own forward."""
    assert channels_last.leading_run(layers, x) == run
    got = channels_last.forward(layers, x)
    assert_close(got, layer_by_layer(layers, x), dtype)
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("net_class", [SimpleConvNet, DeepConvNet])
@pytest.mark.parametrize("n", [1, 37, 100])
def test_networks_predict_what_their_layers_give(net_class, dtype, n):
    rng = np.random.default_rng(n)
    net = net_class(dtype=dtype, rng=3)
    x = rng.random((n, 784)).astype(dtype)
    images = x.reshape(n, 1, 28, 28)
    # DeepConvNet: its six convolutions, three pools and six ReLUs; SimpleConvNet's one
    # convolution gains nothing from the order and runs through its layers
    assert channels_last.leading_run(net.layers.values(), images) == (
        15 if net_class is DeepConvNet else 0
    )
    want = layer_by_layer(net.layers.values(), images)
    got = net.predict(x)
    assert_close(got, want, dtype)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_loss_then_backward_through_the_layers_is_still_the_loss_gradient():
    """The book's gradient(): loss (train=False), then backward through the layers by
    hand. loss must run every layer's forward, not the channels-last path."""
    rng = np.random.default_rng(0)
    net = DeepConvNet(dropout_ratio=0.0, dtype=np.float64, rng=0)  # eval = train mode
    x, t = rng.random((20, 784)), rng.integers(0, 10, 20)
    want = {k: v.copy() for k, v in net.gradient(x, t).items()}
    net.gradient(rng.random((20, 784)), t)  # the layers now hold other images
    net.loss(x, t)
    dout = net.last_layer.backward(1.0)
    for layer in reversed(net.layers.values()):
        dout = layer.backward(dout)
    for layer, key in [("Conv1", "W1"), ("Conv6", "W6"), ("Affine7", "W7")]:
        np.testing.assert_allclose(net.layers[layer].dW, want[key], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strides_padding_rectangles_and_overlapping_pools(dtype):
    """Windows over the edges, strides that skip pixels, 1x1 filters, pools that overlap,
    a ReLU after a ReLU; then the layers after the run (Flatten, Affine) as usual."""
    rng = np.random.default_rng(1)
    layers = [
        conv(rng, 6, 3, 5, 3, dtype, stride=2, pad=2),  # (9, 11) -> (5, 7)
        Relu(),
        Relu(),
        conv(rng, 8, 6, 1, 1, dtype),
        Pooling(3, 3, stride=1),  # overlapping windows: (5, 7) -> (3, 5)
        Relu(inplace=True),
        conv(rng, 5, 8, 2, 2, dtype, stride=1, pad=1),  # (3, 5) -> (4, 6)
        Pooling(2, 2, stride=2),
        Flatten(),
        Affine(rng.standard_normal((5 * 2 * 3, 4)).astype(dtype), np.zeros(4, dtype)),
    ]
    x = rng.standard_normal((7, 3, 9, 11)).astype(dtype)
    run_both_ways(layers, x, dtype, run=8)


@pytest.mark.parametrize(
    "stop",
    [
        lambda rng: Pooling(2, 2, stride=2, mode="avg"),
        lambda rng: Pooling(3, 3, stride=1, pad=1),  # padded pooling
        lambda rng: LeakyReLU(0.1),
        lambda rng: Dropout(0.5, rng=0),
    ],
    ids=["avg-pool", "padded-pool", "leaky-relu", "dropout"],
)
def test_a_layer_it_does_not_take_ends_the_run_and_runs_as_usual(stop):
    rng = np.random.default_rng(2)
    layers = [
        conv(rng, 4, 2, 3, 3, np.float64, pad=1),
        Relu(),
        conv(rng, 4, 4, 3, 3, np.float64, pad=1),
        stop(rng),
        conv(rng, 3, 4, 3, 3, np.float64, pad=1),  # after the run: the layer's own code
        Relu(),
    ]
    x = rng.standard_normal((5, 2, 8, 8))
    run_both_ways(layers, x, np.float64, run=3)


def test_a_subclass_of_a_layer_it_takes_ends_the_run():
    class HalfRelu(Relu):  # a forward of its own: channels-last must not replace it
        def forward(self, x, *, train=False):
            return super().forward(x, train=train) / 2

    rng = np.random.default_rng(2)
    layers = [conv(rng, 3, 1, 3, 3, np.float64), HalfRelu(), conv(rng, 2, 3, 3, 3, np.float64)]
    run_both_ways(layers, rng.standard_normal((3, 1, 9, 9)), np.float64, run=0)


def test_one_convolution_runs_through_its_layers():
    rng = np.random.default_rng(2)
    layers = [conv(rng, 4, 1, 3, 3, np.float64), Pooling(2, 2), Relu(), Flatten()]
    run_both_ways(layers, rng.standard_normal((3, 1, 8, 8)), np.float64, run=0)


def test_groups_of_rows_and_a_short_last_chunk():
    """Many images: the rows go in several cache-sized groups, the last group ends in a
    chunk shorter than the others (chunk_rows); every row must still be right."""
    rng = np.random.default_rng(3)
    layers = [conv(rng, 16, 16, 3, 3, np.float64, pad=1), Relu()] * 2  # the same layers twice
    x = rng.standard_normal((23, 16, 13, 13))  # 3887 rows: groups of 1792, chunks of 128
    run_both_ways(layers, x, np.float64, run=4)


def test_nan_goes_where_the_layers_put_it():
    rng = np.random.default_rng(4)
    layers = [conv(rng, 3, 1, 3, 3, np.float64), conv(rng, 3, 3, 1, 1, np.float64)]
    layers += [Pooling(2, 2), Relu()]
    x = rng.standard_normal((2, 1, 6, 6))
    x[0, 0, 2, 3] = np.nan
    assert channels_last.leading_run(layers, x) == 4
    got, want = channels_last.forward(layers, x), layer_by_layer(layers, x)
    assert (np.isnan(got) == np.isnan(want)).all() and np.isnan(got).any()
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12)


def test_the_input_is_left_alone_and_may_be_non_contiguous():
    rng = np.random.default_rng(5)
    layers = [conv(rng, 4, 1, 3, 3, np.float64), Relu(inplace=True)]
    layers += [conv(rng, 2, 4, 3, 3, np.float64), Relu(inplace=True)]
    big = rng.standard_normal((6, 1, 10, 20))
    x = big[::2, :, :, ::2]  # every other image and column
    before = x.copy()
    got = run_both_ways(layers, x, np.float64, run=4)
    np.testing.assert_array_equal(x, before)
    assert_close(got, layer_by_layer(layers, np.ascontiguousarray(x)), np.float64)


def test_wrong_channels_get_the_layers_error():
    rng = np.random.default_rng(6)
    layers = [conv(rng, 4, 3, 3, 3, np.float64), conv(rng, 4, 4, 3, 3, np.float64)]
    with pytest.raises(ValueError, match="expects 3 input channel"):
        channels_last.forward(layers, np.zeros((2, 1, 8, 8)))


def test_a_stride_that_does_not_tile_gets_the_layers_error():
    rng = np.random.default_rng(7)
    layers = [conv(rng, 2, 1, 3, 3, np.float64), conv(rng, 2, 2, 3, 3, np.float64, stride=2)]
    x = np.zeros((1, 1, 8, 8))  # 8 -> 6, which windows of 3 at stride 2 do not tile
    assert channels_last.leading_run(layers, x) == 2  # the error comes from the run
    with pytest.raises(ValueError, match="stride 2 does not tile"):
        channels_last.forward(layers, x)


def test_two_threads_predict_what_one_thread_predicts():
    rng = np.random.default_rng(9)
    net = DeepConvNet(dtype=np.float64, rng=9)
    x = rng.random((100, 784))
    one = net.predict(x)
    set_num_threads(2)
    try:
        two = net.predict(x)
    finally:
        set_num_threads(1)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)


def test_numpy_kernels_take_the_layers_path():
    """With the compiled loops off, predict is exactly the layers' forward."""
    rng = np.random.default_rng(10)
    net = DeepConvNet(dtype=np.float64, rng=10)
    x = rng.random((5, 784))
    images = x.reshape(5, 1, 28, 28)
    with kernels.use(False):
        assert channels_last.leading_run(net.layers.values(), images) == 0
        np.testing.assert_array_equal(
            net.predict(x), layer_by_layer(net.layers.values(), images)
        )
