"""Convolution, pooling, im2col and col2im: values against plain loops, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlscratch import kernels
from dlscratch.gradient import numerical_gradient, relative_error
from dlscratch.layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Flatten,
    Pooling,
    col2im,
    im2col,
)
from dlscratch.layers.conv import col2im_batched, conv_output_size, im2col_batched


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def loops(request):
    """Every test here runs twice: with the compiled loops (dlscratch.kernels) and without."""
    if request.param == "compiled" and not kernels.available:
        pytest.skip("Numba is not installed (pip install 'dlscratch[fast]')")
    with kernels.use(request.param == "compiled"):
        yield request.param


# -- references written with plain loops over output pixels ---------------------------------------
def naive_im2col(x, FH, FW, stride, pad):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (H + 2 * pad - FH) // stride + 1, (W + 2 * pad - FW) // stride + 1
    rows = []
    for n in range(N):
        for y in range(OH):
            for x_ in range(OW):
                window = xp[n, :, y * stride : y * stride + FH, x_ * stride : x_ * stride + FW]
                rows.append(window.reshape(-1))
    return np.array(rows)


def naive_col2im(col, x_shape, FH, FW, stride, pad):
    N, C, H, W = x_shape
    OH, OW = (H + 2 * pad - FH) // stride + 1, (W + 2 * pad - FW) // stride + 1
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    r = 0
    for n in range(N):
        for y in range(OH):
            for x_ in range(OW):
                window = col[r].reshape(C, FH, FW)
                img[n, :, y * stride : y * stride + FH, x_ * stride : x_ * stride + FW] += window
                r += 1
    return img[:, :, pad : pad + H, pad : pad + W]


def naive_conv(x, W, b, stride, pad):
    N = x.shape[0]
    FN, C, FH, FW = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (xp.shape[2] - FH) // stride + 1, (xp.shape[3] - FW) // stride + 1
    out = np.zeros((N, FN, OH, OW))
    for n in range(N):
        for f in range(FN):
            for y in range(OH):
                for x_ in range(OW):
                    window = xp[n, :, y * stride : y * stride + FH, x_ * stride : x_ * stride + FW]
                    out[n, f, y, x_] = (window * W[f]).sum() + b[f]
    return out


def naive_pool(x, ph, pw, stride, mode):
    N, C, H, W = x.shape
    OH, OW = (H - ph) // stride + 1, (W - pw) // stride + 1
    out = np.zeros((N, C, OH, OW))
    for y in range(OH):
        for x_ in range(OW):
            window = x[:, :, y * stride : y * stride + ph, x_ * stride : x_ * stride + pw]
            reduce = window.max if mode == "max" else window.mean
            out[:, :, y, x_] = reduce(axis=(2, 3))
    return out


def _tiled_size(FH, FW, stride, pad):
    """7, or 8 when the stride does not tile a 7x7 image."""
    return 7 if (7 + 2 * pad - FH) % stride == 0 and (7 + 2 * pad - FW) % stride == 0 else 8


# (FH, FW, stride, pad): overlapping (stride < filter) and non-overlapping windows
CASES = [(3, 3, 1, 0), (3, 3, 2, 0), (3, 3, 1, 1), (3, 3, 2, 1), (2, 2, 2, 0), (2, 3, 1, 1)]


@pytest.mark.parametrize("FH,FW,stride,pad", CASES)
def test_im2col_and_col2im_match_loops(FH, FW, stride, pad):
    rng = np.random.default_rng(0)
    H = _tiled_size(FH, FW, stride, pad)
    x = rng.standard_normal((2, 3, H, H))
    col = im2col(x, FH, FW, stride, pad)
    OH = (H + 2 * pad - FH) // stride + 1
    OW = (H + 2 * pad - FW) // stride + 1
    assert col.shape == (2 * OH * OW, 3 * FH * FW)
    np.testing.assert_array_equal(col, naive_im2col(x, FH, FW, stride, pad))
    batched = im2col_batched(x, FH, FW, stride, pad)
    assert batched.shape == (2, 3 * FH * FW, OH * OW)
    np.testing.assert_array_equal(batched.transpose(0, 2, 1).reshape(col.shape), col)
    back = col2im(col, x.shape, FH, FW, stride, pad)
    np.testing.assert_allclose(back, naive_col2im(col, x.shape, FH, FW, stride, pad), atol=1e-12)
    np.testing.assert_allclose(col2im_batched(batched, x.shape, FH, FW, stride, pad), back)


def test_im2col_tiny_example_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    col = im2col(x, 2, 2, stride=2)
    np.testing.assert_array_equal(
        col, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    )
    # overlapping windows: the centre pixels belong to several windows and add up
    ones = np.ones((9, 4))  # 3x3 windows of 2x2 with stride 1 over a 4x4 image
    counts = col2im(ones, (1, 1, 4, 4), 2, 2, stride=1)
    np.testing.assert_array_equal(
        counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    )


def test_im2col_is_adjoint_of_col2im():
    """<im2col(x), c> == <x, col2im(c)>: col2im is the transpose that backward needs."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 6, 6))
    c = rng.standard_normal((2 * 4 * 4, 2 * 9))
    lhs = (im2col(x, 3, 3, 1, 0) * c).sum()
    rhs = (x * col2im(c, x.shape, 3, 3, 1, 0)).sum()
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("FH,FW,stride,pad", CASES)
def test_convolution_forward_matches_loops(FH, FW, stride, pad):
    rng = np.random.default_rng(2)
    H = _tiled_size(FH, FW, stride, pad)
    x = rng.standard_normal((2, 3, H, H))
    W, b = rng.standard_normal((4, 3, FH, FW)), rng.standard_normal(4)
    conv = Convolution(W, b, stride, pad)
    np.testing.assert_allclose(conv.forward(x), naive_conv(x, W, b, stride, pad), atol=1e-12)


def _layer_gradients(layer, x, rng):
    """(analytic, numerical) gradients of sum(forward(x) * dout) for x and every param."""
    out = layer.forward(x, train=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}

    def f(_):
        return float((layer.forward(x, train=True) * dout).sum())

    numerical = {"x": numerical_gradient(f, x)}
    for key, p in layer.params.items():
        numerical[key] = numerical_gradient(f, p)
    return analytic, numerical


@pytest.mark.parametrize(
    "FH,FW,stride,pad", [(3, 3, 1, 0), (3, 3, 2, 0), (3, 3, 1, 1), (3, 3, 2, 1), (2, 2, 2, 0)]
)
def test_convolution_gradient_check(FH, FW, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 7, 7)) if (7 + 2 * pad - FH) % stride == 0 else None
    if x is None:
        x = rng.standard_normal((2, 2, 8, 8))
    conv = Convolution(rng.standard_normal((3, 2, FH, FW)), rng.standard_normal(3), stride, pad)
    analytic, numerical = _layer_gradients(conv, x, rng)
    assert analytic["W"].shape == (3, 2, FH, FW) and analytic["b"].shape == (3,)
    for key in ("x", "W", "b"):
        assert relative_error(analytic[key], numerical[key]) < 1e-7, key


@pytest.mark.parametrize(
    "ph,pw,stride,pad,mode",
    [
        (2, 2, None, 0, "max"),
        (3, 3, 1, 0, "max"),
        (3, 3, 2, 1, "max"),
        (2, 2, None, 0, "avg"),
        (3, 3, 1, 1, "avg"),
        (2, 3, 1, 0, "max"),
    ],
)
def test_pooling_forward_and_gradient(ph, pw, stride, pad, mode):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 6)) if (6 + 2 * pad - ph) % (stride or ph) == 0 else None
    if x is None:
        x = rng.standard_normal((2, 3, 7, 7))
    pool = Pooling(ph, pw, stride=stride, pad=pad, mode=mode)
    s = stride or ph
    if pad == 0:
        np.testing.assert_allclose(pool.forward(x), naive_pool(x, ph, pw, s, mode))
    analytic, numerical = _layer_gradients(pool, x, rng)
    assert relative_error(analytic["x"], numerical["x"]) < 1e-7


def test_max_pooling_routes_ties_to_the_first_maximum():
    x = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    pool = Pooling(2, 2)
    assert pool.forward(x)[0, 0, 0, 0] == 1.0
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1)))[0, 0], [[1, 0], [0, 0]])
    x = -np.ones((1, 1, 2, 2))  # padded with -inf, never with a 0 that would win
    assert Pooling(2, 2, stride=2, pad=1).forward(x).max() == -1.0


def test_pooling_output_shape_and_argmax_dtype():
    x = np.random.default_rng(5).standard_normal((4, 30, 24, 24)).astype(np.float32)
    pool = Pooling(2, 2, stride=2)
    out = pool.forward(x)
    assert out.shape == (4, 30, 12, 12) and out.dtype == np.float32
    assert pool.backward(np.ones_like(out)).dtype == np.float32
    assert pool.backward(np.ones_like(out)).sum() == out.size  # one pixel per window


def test_flatten_round_trip():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    f = Flatten()
    assert f.forward(x).shape == (2, 12)
    assert f.backward(np.ones((2, 12))).shape == x.shape


def test_conv_output_size():
    assert conv_output_size(28, 5) == 24
    assert conv_output_size(28, 3, 1, 1) == 28
    assert conv_output_size(14, 3, 1, 2) == 16
    assert conv_output_size(24, 2, 2) == 12


# -- bad input: one clear error naming the shapes --------------------------------------------------
def test_bad_inputs_name_the_shapes():
    rng = np.random.default_rng(6)
    conv = Convolution(rng.standard_normal((4, 3, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(2, 147\)"):
        conv.forward(rng.standard_normal((2, 147)))
    with pytest.raises(ValueError, match=r"expects 3 input channel.*\(2, 1, 7, 7\)"):
        conv.forward(rng.standard_normal((2, 1, 7, 7)))
    with pytest.raises(ValueError, match=r"window of 3 does not fit.*size 2 with pad 0"):
        conv.forward(rng.standard_normal((2, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"stride 2 does not tile.*\(2, 3, 8, 8\)"):
        Convolution(rng.standard_normal((4, 3, 3, 3)), np.zeros(4), stride=2).forward(
            rng.standard_normal((2, 3, 8, 8))
        )
    with pytest.raises(ValueError, match=r"stride 2 does not tile"):
        Pooling(2, 2).forward(rng.standard_normal((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Pooling(2, 2).forward(rng.standard_normal((5, 5)))
    with pytest.raises(ValueError, match=r"W \(FN, C, FH, FW\) and biases b \(FN,\)"):
        Convolution(np.zeros((4, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        Convolution(np.zeros((4, 3, 3, 3)), np.zeros(4), stride=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        Pooling(2, 2, mode="min")
    with pytest.raises(ValueError, match=r"does not fit images of shape"):
        col2im(np.zeros((5, 9)), (1, 1, 4, 4), 3, 3)
    with pytest.raises(RuntimeError, match="before forward"):
        conv.backward(np.zeros((1, 4, 1, 1)))


def test_float32_stays_float32_and_first_layer_skips_dx():
    rng = np.random.default_rng(7)
    x = rng.random((3, 1, 8, 8), dtype=np.float32)
    conv = Convolution(
        rng.standard_normal((2, 1, 3, 3)).astype(np.float32), np.zeros(2, np.float32)
    )
    out = conv.forward(x)
    assert out.dtype == np.float32
    dx = conv.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    conv.input_grad = False
    assert conv.backward(np.ones_like(out)) is None
    assert conv.dW.dtype == np.float32 and conv.db.shape == (2,)


# -- book attribute aliases ------------------------------------------------------------------------
def test_book_aliases_read_and_write_in_place():
    rng = np.random.default_rng(8)
    conv = Convolution(rng.standard_normal((2, 1, 3, 3)), np.zeros(2))
    W = conv.W
    assert W is conv.params["W"] and conv.b is conv.params["b"]
    conv.W = np.ones((2, 1, 3, 3))
    assert conv.params["W"] is W and (W == 1).all()
    message = r"Convolution.W has shape \(2, 1, 3, 3\); the new value has shape \(2, 3, 3\)"
    with pytest.raises(ValueError, match=message):
        conv.W = np.ones((2, 3, 3))
    out = conv.forward(rng.standard_normal((1, 1, 4, 4)))
    conv.backward(np.ones_like(out))
    assert conv.dW is conv.grads["W"] and conv.db is conv.grads["b"]
    np.testing.assert_array_equal(conv.db, [4.0, 4.0])

    affine = Affine(np.zeros((3, 2)), np.zeros(2))
    affine.b = [1.0, 2.0]
    np.testing.assert_array_equal(affine.forward(np.ones((1, 3))), [[1.0, 2.0]])
    affine.backward(np.ones((1, 2)))
    assert affine.dW.shape == (3, 2) and affine.db.shape == (2,)

    bn = BatchNormalization(np.ones(3), np.zeros(3))
    assert bn.gamma is bn.params["gamma"] and bn.beta is bn.params["beta"]
    bn.gamma = np.full(3, 2.0)
    assert (bn.params["gamma"] == 2).all()


# -- dropout: inverted and the book's form ---------------------------------------------------------
def test_dropout_book_form_scales_at_test_time():
    x = np.ones((1000, 10))
    book = Dropout(0.3, rng=0, scale="book")
    kept = book.forward(x, train=True)
    assert set(np.unique(kept)) == {0.0, 1.0}  # no scaling in training
    np.testing.assert_allclose(book.forward(x), 0.7 * x)  # scaled by 1 - ratio at test time
    np.testing.assert_allclose(book.backward(np.ones((1000, 10))), 0.7)
    inverted = Dropout(0.3, rng=0)
    trained = inverted.forward(x, train=True)
    np.testing.assert_allclose(np.unique(trained), [0.0, 1 / 0.7])
    assert inverted.forward(x) is x
    # the same random bits: the two forms keep the same units
    np.testing.assert_array_equal(kept > 0, trained > 0)
    with pytest.raises(ValueError, match="scale must be one of"):
        Dropout(0.5, scale="halved")


def test_dropout_forms_train_differently_with_sgd():
    """One SGD step on the weights after a dropout: gradients differ by 1 / (1 - ratio)."""
    x = np.ones((4, 6))
    grads = {}
    for scale in ("inverted", "book"):
        drop = Dropout(0.5, rng=1, scale=scale)
        affine = Affine(np.ones((6, 1)), np.zeros(1))
        affine.forward(drop.forward(x, train=True))
        affine.backward(np.ones((4, 1)))
        grads[scale] = affine.dW.copy()
    np.testing.assert_allclose(grads["inverted"], 2 * grads["book"])
    assert grads["book"].any()
