"""Behaviour that the speed tricks of the layers and loss functions must keep."""

import numpy as np
import pytest

from dlscratch import functions as F
from dlscratch.fast import sum_over_batch, transposed
from dlscratch.layers import Relu, SoftmaxWithLoss


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
def test_labels_checked_at_both_ends_for_every_integer_type(dtype):
    y = np.full((3, 10), 0.1)
    assert F.cross_entropy_error(y, np.array([0, 9, 4], dtype=dtype)) > 0
    with pytest.raises(ValueError, match=r"from 0 to 10"):
        F.cross_entropy_error(y, np.array([0, 10, 4], dtype=dtype))
    if np.dtype(dtype).kind == "i":
        with pytest.raises(ValueError, match=r"from -1 to 4"):
            F.cross_entropy_error(y, np.array([0, -1, 4], dtype=dtype))


def test_relu_keeps_up_with_changing_shapes_and_dtypes(rng):
    relu = Relu()
    for shape, dtype in [((4, 3), np.float32), ((2, 3), np.float32), ((2, 3), np.float64)]:
        x = rng.standard_normal(shape).astype(dtype)
        y = relu.forward(x)
        assert y.dtype == dtype and y.shape == shape
        np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
        np.testing.assert_array_equal(relu.backward(np.ones_like(x)), (x > 0).astype(dtype))
    np.testing.assert_array_equal(relu.forward(np.array([[-2, 3]])), [[0.0, 3.0]])


def test_softmax_cross_entropy_of_integer_scores():
    scores, labels = np.array([[1, 2, 3], [0, 0, 0]]), np.array([2, 0])
    loss, y = F.softmax_cross_entropy(scores, labels)
    expected, y_float = F.softmax_cross_entropy(scores.astype(float), labels)
    assert loss == pytest.approx(expected)
    np.testing.assert_allclose(y, y_float)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)


def test_softmax_with_loss_leaves_its_input_alone(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    before = x.copy()
    layer = SoftmaxWithLoss()
    layer.forward(x, np.array([0, 1, 2, 3, 0]))
    layer.backward()
    np.testing.assert_array_equal(x, before)


def test_sum_over_batch_reuses_no_writable_state(rng):
    a = rng.standard_normal((7, 3)).astype(np.float32)
    np.testing.assert_allclose(sum_over_batch(a), a.sum(axis=0), rtol=1e-6)
    out = sum_over_batch(a)
    out[...] = 0  # the result is the caller's to change
    np.testing.assert_allclose(sum_over_batch(a), a.sum(axis=0), rtol=1e-6)
    given = np.empty(3, np.float32)  # how a layer writes into the network's gradient buffer
    assert sum_over_batch(a, out=given) is given
    np.testing.assert_allclose(given, a.sum(axis=0), rtol=1e-6)


def test_transposed_is_w_t_as_a_contiguous_copy(rng):
    W = rng.standard_normal((5, 3)).astype(np.float32)
    T = transposed(W)
    np.testing.assert_array_equal(T, W.T)
    assert T.flags["C_CONTIGUOUS"] and not np.shares_memory(T, W)


def test_channel_sums_is_the_sum_over_batch_and_positions(rng):
    from dlscratch.fast import channel_sums

    a = rng.standard_normal((7, 5, 13))
    np.testing.assert_allclose(channel_sums(a), a.sum(axis=(0, 2)), rtol=1e-12)
    out = np.empty(5)
    assert channel_sums(a, out=out) is out


def test_image_groups_cover_the_batch_in_order_within_the_cache_budget():
    from dlscratch.fast import CACHE_BYTES, image_groups

    per_image = CACHE_BYTES // 7 + 1  # six images fit, the seventh does not
    groups = image_groups(40, per_image)
    assert [g.start for g in groups] == list(range(0, 40, 6))
    assert groups[-1] == slice(36, 40)
    assert image_groups(3, 10 * CACHE_BYTES) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert image_groups(0, 100) == [slice(0, 0)]


def test_convolution_in_groups_equals_one_product_over_the_batch(rng):
    """Enough images for several cache-sized groups, the last one short: the same numbers
    as the book's im2col and a single matrix product, forward and backward."""
    from dlscratch.fast import CACHE_BYTES, image_groups
    from dlscratch.layers import Convolution, col2im, im2col

    N, C, H, FN = 23, 32, 16, 8
    x = rng.standard_normal((N, C, H, H))
    W, b = rng.standard_normal((FN, C, 3, 3)), rng.standard_normal(FN)
    col_bytes = C * 9 * H * H * x.itemsize  # pad 1: OH = OW = H
    assert len(image_groups(N, col_bytes)) > 2 and N % (CACHE_BYTES // col_bytes) != 0
    conv = Convolution(W, b, stride=1, pad=1)
    out = conv.forward(x)
    col = im2col(x, 3, 3, 1, 1)  # (N*H*H, C*9)
    expected = (col @ W.reshape(FN, -1).T + b).reshape(N, H, H, FN).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    dflat = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # (N*H*H, FN)
    np.testing.assert_allclose(conv.dW, (col.T @ dflat).T.reshape(W.shape), rtol=1e-10)
    np.testing.assert_allclose(conv.db, dflat.sum(axis=0), rtol=1e-10)
    dx_expected = col2im(dflat @ W.reshape(FN, -1), x.shape, 3, 3, 1, 1)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-10, atol=1e-12)

