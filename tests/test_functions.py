"""Activations and losses against the worked numbers of chapters 3-4."""

import warnings

import numpy as np
import pytest

from dlscratch import functions as F

# The notes' running example: the label is 2; y1 guesses 2, y2 guesses 7.
T = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
Y1 = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
Y2 = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
# The notes' two-sample batch (labels 3 and 8).
YB = np.array([[0, 0, 0.02, 0.03, 0, 0, 0, 0.1, 0.05, 0.8], [0, 0, 0, 0, 0.01, 0, 0, 0, 0.99, 0]])
TB_ONEHOT = np.eye(10)[[3, 8]]
TB_INT = np.array([3, 8])


def test_step_function():
    np.testing.assert_array_equal(F.step_function(np.array([-1.0, 0.0, 1.0, 2.0])), [0, 0, 1, 1])


def test_sigmoid_values_and_no_overflow_warning():
    np.testing.assert_allclose(
        F.sigmoid(np.array([-1.0, 1.0, 2.0])), [0.26894142, 0.73105858, 0.88079708], rtol=1e-7
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])
    assert F.sigmoid(np.float32(3.0)).dtype == np.float32


def test_relu_tanh_identity():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(F.relu(x), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(F.tanh(x), np.tanh(x))
    assert F.identity_function(x) is x


def test_softmax_worked_example():
    y = F.softmax(np.array([0.3, 2.9, 4.0]))
    np.testing.assert_allclose(y, [0.01821127, 0.24519181, 0.73659691], rtol=1e-6)
    assert y.sum() == pytest.approx(1.0)


def test_softmax_overflow_guard():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.softmax(np.array([1010.0, 1000.0, 990.0]))
    np.testing.assert_allclose(y, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-6)
    assert not np.isnan(y).any()


def test_softmax_batched_rows_independent():
    x = np.array([[0.3, 2.9, 4.0], [1010.0, 1000.0, 990.0]])
    y = F.softmax(x)
    np.testing.assert_allclose(y[0], F.softmax(x[0]))
    np.testing.assert_allclose(y[1], F.softmax(x[1]))
    np.testing.assert_allclose(y.sum(axis=1), [1.0, 1.0])


def test_mean_squared_error_worked_examples():
    assert F.mean_squared_error(Y1, T) == pytest.approx(0.0975)
    assert F.mean_squared_error(Y2, T) == pytest.approx(0.5975)
    both = np.stack([Y1, Y2])
    assert F.mean_squared_error_mean(both, np.stack([T, T])) == pytest.approx((0.0975 + 0.5975) / 2)


def test_mean_squared_error_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        F.mean_squared_error(Y1, T[:5])


def test_cross_entropy_worked_examples():
    assert F.cross_entropy_error(Y1, T) == pytest.approx(0.510825457, abs=1e-9)
    assert F.cross_entropy_error(Y2, T) == pytest.approx(2.302584092, abs=1e-9)
    # integer label for a single sample
    assert F.cross_entropy_error(Y1, np.array(2)) == pytest.approx(0.510825457, abs=1e-9)


def test_cross_entropy_batch_one_hot_and_integer():
    assert F.cross_entropy_error(YB, TB_ONEHOT) == pytest.approx(1.7583023994178049, abs=1e-12)
    assert F.cross_entropy_error(YB, TB_INT) == pytest.approx(1.7583023994178049, abs=1e-12)


def test_cross_entropy_zero_probability_is_finite():
    assert np.isfinite(F.cross_entropy_error(np.array([0.0, 1.0]), np.array([1, 0])))


def test_cross_entropy_bad_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        F.cross_entropy_error(YB, np.array([3, 10]))
    with pytest.raises(ValueError, match="one-hot with shape"):
        F.cross_entropy_error(YB, np.array([3, 8, 1]))


def test_softmax_cross_entropy_matches_composition(rng):
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    loss, probs = F.softmax_cross_entropy(x, t)
    np.testing.assert_allclose(probs, F.softmax(x))
    # the composed form carries the 1e-7 guard, so agreement is to ~1e-6
    assert loss == pytest.approx(F.cross_entropy_error(F.softmax(x), t), rel=1e-5)
    # huge logits: the fused form stays exact where softmax would underflow to 0
    loss_big, _ = F.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    assert loss_big == pytest.approx(1000.0)


def test_log_softmax(rng):
    x = rng.standard_normal((3, 5))
    np.testing.assert_allclose(F.log_softmax(x), np.log(F.softmax(x)))
