"""The notes' worked numbers, recomputed: ``dlscratch verify``.

Each check recomputes one value that the study notes print (chapters 3-5) and
compares it with the printed value, so a reader can see at a glance that this
library reproduces the book.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlscratch import functions as F
from dlscratch.gradient import gradient_check, gradient_descent, numerical_diff, numerical_gradient
from dlscratch.layers import AddLayer, MulLayer
from dlscratch.nets import MultiLayerNet, SimpleNet, TwoLayerNet


@dataclass
class Check:
    """One reference check: what the notes print and what we compute."""

    name: str
    expected: str
    got: str
    passed: bool


def _close(name, expected, got, tol=1e-8) -> Check:
    expected, got = np.asarray(expected, dtype=float), np.asarray(got, dtype=float)
    ok = expected.shape == got.shape and bool(np.allclose(got, expected, rtol=tol, atol=tol))
    return Check(name, _fmt(expected), _fmt(got), ok)


def _fmt(a) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.16g}"
    return np.array2string(a, precision=8, separator=", ", max_line_width=60)


def _function_1(x):
    return 0.01 * x**2 + 0.1 * x


def _function_2(x):
    return float(np.sum(x**2))


def run_checks() -> list[Check]:
    """Recompute every reference value; returns one :class:`Check` per value."""
    checks = []
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    y_right = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    y_wrong = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
    yb = np.array(
        [[0, 0, 0.02, 0.03, 0, 0, 0, 0.1, 0.05, 0.8], [0, 0, 0, 0, 0.01, 0, 0, 0, 0.99, 0]]
    )

    # chapter 3
    checks.append(
        _close(
            "softmax([0.3, 2.9, 4.0])",
            [0.01821127, 0.24519181, 0.73659691],
            F.softmax(np.array([0.3, 2.9, 4.0])),
            tol=1e-7,
        )
    )
    big = F.softmax(np.array([1010.0, 1000.0, 990.0]))
    checks.append(
        _close(
            "softmax([1010, 1000, 990])",
            [9.99954600e-01, 4.53978686e-05, 2.06106005e-09],
            big,
            1e-8,
        )
    )
    checks.append(
        _close(
            "sigmoid([-1, 1, 2])",
            [0.26894142, 0.73105858, 0.88079708],
            F.sigmoid(np.array([-1.0, 1.0, 2.0])),
            1e-7,
        )
    )
    # chapter 4: losses
    checks.append(_close("MSE, right guess", 0.0975, F.mean_squared_error(y_right, t)))
    checks.append(_close("MSE, wrong guess", 0.5975, F.mean_squared_error(y_wrong, t)))
    checks.append(_close("CEE, right guess", 0.510825457, F.cross_entropy_error(y_right, t), 1e-9))
    checks.append(_close("CEE, wrong guess", 2.302584092, F.cross_entropy_error(y_wrong, t), 1e-9))
    checks.append(
        _close(
            "batch CEE, one-hot", 1.7583023994, F.cross_entropy_error(yb, np.eye(10)[[3, 8]]), 1e-10
        )
    )
    checks.append(
        _close(
            "batch CEE, labels", 1.7583023994, F.cross_entropy_error(yb, np.array([3, 8])), 1e-10
        )
    )
    # chapter 4: numerical differentiation
    checks.append(
        _close(
            "d/dx (0.01x^2+0.1x) at 5", 0.1999999999990898, numerical_diff(_function_1, 5), 1e-15
        )
    )
    checks.append(
        _close(
            "d/dx (0.01x^2+0.1x) at 10", 0.2999999999986347, numerical_diff(_function_1, 10), 1e-15
        )
    )
    for point, grad in (
        ((3.0, 4.0), (6.0, 8.0)),
        ((0.0, 2.0), (0.0, 4.0)),
        ((3.0, 0.0), (6.0, 0.0)),
    ):
        checks.append(
            _close(
                f"grad x0^2+x1^2 at {point}",
                grad,
                numerical_gradient(_function_2, np.array(point)),
                1e-7,
            )
        )
    x, _ = gradient_descent(_function_2, np.array([-3.0, 4.0]), lr=0.1, step_num=100)
    checks.append(_close("gradient descent lr=0.1", [0.0, 0.0], x, 1e-8))
    x, _ = gradient_descent(_function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    checks.append(_close("gradient descent lr=1e-10", [-2.99999994, 3.99999992], x, 1e-8))
    x, _ = gradient_descent(_function_2, np.array([-3.0, 4.0]), lr=10.0, step_num=100)
    checks.append(
        Check(
            "gradient descent lr=10 diverges", "|x| > 1e10", _fmt(x), bool(np.abs(x).max() > 1e10)
        )
    )
    net = SimpleNet(W=[[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]])
    xs, ts = np.array([0.6, 0.9]), np.array([0, 0, 1])
    checks.append(_close("simpleNet loss", 0.92806853663411326, net.loss(xs, ts), 1e-7))
    dW = net.numerical_gradient(xs, ts)["W"]
    checks.append(_close("simpleNet dW row sums", [0.0, 0.0], dW.sum(axis=1), 1e-9))
    # chapter 5: computational graphs
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    d_apple_price, d_tax = mul_tax.backward(1)
    d_apple, d_num = mul_apple.backward(d_apple_price)
    checks.append(
        _close(
            "buy apples: price, d_apple, d_num, d_tax",
            [220, 2.2, 110, 200],
            [price, d_apple, d_num, d_tax],
        )
    )
    layers = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    a, o = layers[0].forward(100, 2), layers[1].forward(150, 3)
    price = layers[3].forward(layers[2].forward(a, o), 1.1)
    d_total, d_tax = layers[3].backward(1)
    da, do = layers[2].backward(d_total)
    d_apple, d_apple_num = layers[0].backward(da)
    d_orange, d_orange_num = layers[1].backward(do)
    checks.append(
        _close(
            "apples+oranges: price, d_num, d_apple, d_orange, d_onum, d_tax",
            [715, 110, 2.2, 3.3, 165, 650],
            [price, d_apple_num, d_apple, d_orange, d_orange_num, d_tax],
        )
    )
    # chapter 5-6: backprop agrees with numerical gradients
    rng = np.random.default_rng(0)
    xg, tg = rng.standard_normal((4, 8)), rng.integers(0, 3, 4)
    for label, net in (
        ("TwoLayerNet", TwoLayerNet(8, 6, 3, weight_init_std=0.5, dtype=np.float64, rng=1)),
        (
            "MultiLayerNet+BN+dropout+decay",
            MultiLayerNet(
                8,
                [6, 5],
                3,
                use_batchnorm=True,
                use_dropout=True,
                dropout_ratio=0.2,
                weight_decay_lambda=0.1,
                dtype=np.float64,
                rng=1,
            ),
        ),
    ):
        result = gradient_check(net, xg, tg)
        worst = max(result.max_rel_diff.values())
        checks.append(Check(f"gradient check {label}", "rel < 1e-6", f"{worst:.2e}", result.passed))
    return checks


def format_table(checks: list[Check], width: int | None = None) -> str:
    """The checks as text at most ``width`` columns wide (default: the terminal's, else 80).

    One row per check (check, expected, got, result) when that fits; otherwise each
    check on its own line with its verdict, and the expected and got values wrapped
    beneath it.
    """
    import shutil
    import textwrap

    width = width or shutil.get_terminal_size((80, 24)).columns
    w = max(len("check"), *(len(c.name) for c in checks))
    we = max(len("expected"), *(len(c.expected) for c in checks))
    wg = max(len("got"), *(len(c.got) for c in checks))
    n_pass = sum(c.passed for c in checks)
    footer = f"{n_pass} of {len(checks)} checks pass"
    if w + we + wg + len("  " * 3 + "result") <= width:
        rows = [f"{'check':<{w}}  {'expected':<{we}}  {'got':<{wg}}  result"]
        for c in checks:
            verdict = "pass" if c.passed else "FAIL"
            rows.append(f"{c.name:<{w}}  {c.expected:<{we}}  {c.got:<{wg}}  {verdict}")
        return "\n".join([*rows, footer])
    rows = []
    for c in checks:
        verdict = "pass" if c.passed else "FAIL"
        name = textwrap.shorten(c.name, max(width - 6, 20), placeholder="...")
        rows.append(f"{name:<{max(width - 6, len(name))}}  {verdict}".rstrip())
        for label, value in (("expected", c.expected), ("got", c.got)):
            rows += textwrap.wrap(
                value, width, initial_indent=f"  {label:<9}", subsequent_indent=" " * 11
            )
    return "\n".join([*rows, footer])
