"""Numerical differentiation and gradient descent (chapter 4) against the notes' numbers."""

import numpy as np
import pytest

from dlscratch.gradient import (
    GradientCheckResult,
    gradient_descent,
    numerical_diff,
    numerical_gradient,
    relative_error,
)


def function_1(x):
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    return np.sum(x**2)


def test_numerical_diff_worked_examples():
    # The notes print these exact digits (float64 central difference, h = 1e-4).
    assert numerical_diff(function_1, 5) == 0.1999999999990898
    assert numerical_diff(function_1, 10) == 0.2999999999986347


def test_partial_derivatives():
    assert numerical_diff(lambda x0: x0 * x0 + 4.0**2, 3.0) == pytest.approx(6.0, abs=1e-9)
    assert numerical_diff(lambda x1: 3.0**2 + x1 * x1, 4.0) == pytest.approx(8.0, abs=1e-9)


@pytest.mark.parametrize(
    "point, expected",
    [((3.0, 4.0), (6.0, 8.0)), ((0.0, 2.0), (0.0, 4.0)), ((3.0, 0.0), (6.0, 0.0))],
)
def test_numerical_gradient_worked_examples(point, expected):
    np.testing.assert_allclose(numerical_gradient(function_2, np.array(point)), expected, atol=1e-7)


def test_numerical_gradient_any_shape(rng):
    x = rng.standard_normal((2, 3, 4))
    grad = numerical_gradient(lambda a: np.sum(a**3), x.copy())
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-6, atol=1e-7)


def test_numerical_gradient_restores_input_even_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    calls = []

    def f(a):
        calls.append(a.copy())
        if len(calls) == 2:
            raise RuntimeError("boom")
        return float(a.sum())

    with pytest.raises(RuntimeError):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    # the input is also unchanged after a normal call
    numerical_gradient(function_2, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_numerical_gradient_rejects_integer_arrays():
    with pytest.raises(TypeError, match="float array"):
        numerical_gradient(function_2, np.array([3, 4]))


def test_gradient_descent_converges_with_path():
    init = np.array([-3.0, 4.0])
    x, path = gradient_descent(function_2, init, lr=0.1, step_num=100)
    assert np.abs(x).max() < 1e-8
    assert path.shape == (101, 2)
    np.testing.assert_array_equal(path[0], [-3.0, 4.0])
    np.testing.assert_array_equal(path[-1], x)
    np.testing.assert_array_equal(init, [-3.0, 4.0])  # not modified
    # each step shrinks by (1 - 2 * lr) = 0.8
    np.testing.assert_allclose(path[1], [-2.4, 3.2])


def test_gradient_descent_learning_rate_too_large_or_small():
    x_big, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=10.0, step_num=100)
    # diverges, to exactly the values the notes print
    np.testing.assert_allclose(x_big, [-2.58983747e13, -1.29524862e12], rtol=1e-8)
    x_small, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    np.testing.assert_allclose(x_small, [-2.99999994, 3.99999992], rtol=1e-8)


@pytest.mark.parametrize("bad", [0, -0.1, float("nan")])
def test_gradient_descent_rejects_bad_lr(bad):
    with pytest.raises(ValueError, match="lr must be > 0"):
        gradient_descent(function_2, np.array([1.0, 1.0]), lr=bad)


def test_relative_error_scale_and_floor():
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3])) == pytest.approx(1e-3)
    assert relative_error(np.zeros(3), np.full(3, 1e-17)) < 1e-8


def test_gradient_check_result_verdict():
    r = GradientCheckResult({"W": 1e-9}, {"W": 1e-9})
    assert r.passed and "PASS" in str(r)
    r = GradientCheckResult({"W": 1e-2}, {"W": 1e-2})
    assert not r.passed and "FAIL" in str(r)
