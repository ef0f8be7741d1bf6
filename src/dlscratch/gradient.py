"""Numerical differentiation (chapter 4) and gradient checking (chapter 5).

``numerical_diff`` and ``numerical_gradient`` use the central difference
``(f(x + h) - f(x - h)) / 2h`` with ``h = 1e-4``, whose error is O(h^2)
rather than the forward difference's O(h).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The step of the central difference used throughout the notes.
H = 1e-4


def numerical_diff(f, x, h: float = H) -> float:
    """Derivative of a scalar function ``f`` at ``x`` by central difference."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f, x, h: float = H):
    """Gradient of scalar ``f`` at ``x``, for ``x`` of any shape.

    Each element of ``x`` is nudged by ``+h`` and ``-h`` *in place* (so that
    ``f`` may be a closure over a network's parameter array) and restored
    afterwards - also when ``f`` raises.

    x: float array of any shape -> gradient of the same shape and dtype.
    """
    x = _as_float_array(x)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: writes reach x
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i].copy()
        try:
            flat_x[i] = original + h
            f_plus = f(x)
            flat_x[i] = original - h
            f_minus = f(x)
        finally:
            flat_x[i] = original
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def gradient_descent(f, init_x, lr: float = 0.01, step_num: int = 100):
    """Minimise ``f`` by ``x <- x - lr * grad f(x)``, ``step_num`` times.

    Returns ``(x, path)``: the final point and an array of shape
    ``(step_num + 1, *x.shape)`` holding every point visited, the start included.
    ``init_x`` is not modified.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if int(step_num) != step_num or step_num < 0:
        raise ValueError(f"step_num must be a non-negative integer, got {step_num}")
    x = _as_float_array(init_x).astype(np.float64, copy=True)
    path = [x.copy()]
    for _ in range(int(step_num)):
        x -= lr * numerical_gradient(f, x)
        path.append(x.copy())
    return x, np.array(path)


def _as_float_array(x):
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"numerical gradients need a float array, got dtype {x.dtype}; "
                "convert with x.astype(np.float64)"
            )
        return x
    return np.asarray(x, dtype=np.float64)


@dataclass
class GradientCheckResult:
    """Per-parameter differences between backprop and numerical gradients."""

    max_abs_diff: dict = field(default_factory=dict)
    max_rel_diff: dict = field(default_factory=dict)
    tolerance: float = 1e-6

    @property
    def passed(self) -> bool:
        return all(v < self.tolerance for v in self.max_rel_diff.values())

    def __str__(self) -> str:
        rows = [f"{'param':<10} {'max |diff|':>12} {'max rel':>12}  verdict"]
        for name in self.max_abs_diff:
            rel = self.max_rel_diff[name]
            verdict = "ok" if rel < self.tolerance else "FAIL"
            rows.append(f"{name:<10} {self.max_abs_diff[name]:12.3e} {rel:12.3e}  {verdict}")
        rows.append(f"overall: {'PASS' if self.passed else 'FAIL'} (rel tol {self.tolerance:g})")
        return "\n".join(rows)


#: Gradient scale below which differences are judged absolutely (``diff / GRAD_FLOOR``).
#: Central differences in float64 carry rounding noise of about ``eps * |loss| / h``
#: (~2e-12 for h = 1e-4), so a gradient that is zero in theory reads as ~1e-12.
GRAD_FLOOR = 1e-5


def relative_error(a, b, floor: float = GRAD_FLOOR) -> float:
    """``max|a - b| / max(max|a|, max|b|, floor)``: the difference relative to the gradient's scale.

    Measured against the largest entry of the parameter's gradient rather than
    entry by entry, so that entries which are zero up to rounding (common with
    ReLU) do not blow the ratio up. The ``floor`` handles gradients that are
    exactly zero in theory, such as the bias of an Affine layer followed by
    batch norm: there both methods return rounding noise (~1e-17 vs ~1e-12).
    """
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), floor)
    return float(np.max(np.abs(a - b))) / scale


def gradient_check(net, x, t, *, tolerance: float = 1e-6, h: float = H) -> GradientCheckResult:
    """Compare ``net.gradient`` (backprop) with ``net.numerical_gradient``.

    Run in float64 (build the net with ``dtype=np.float64``; ``x`` is cast).
    Dropout masks are frozen for the duration of the check so both gradients
    see the same network, and batch-norm running statistics are restored
    afterwards; batch norm needs a batch of at least 2.

    Returns a :class:`GradientCheckResult` with the max absolute and relative
    difference per parameter and a pass/fail verdict (``.passed``).
    """
    x = np.asarray(x, dtype=np.float64)
    if getattr(net, "dtype", np.float64) != np.float64:
        raise TypeError("gradient_check needs a float64 network: build it with dtype=np.float64")
    with net.frozen_state():
        numerical = net.numerical_gradient(x, t, h=h)
        backprop = net.gradient(x, t)
    return compare_gradients(backprop, numerical, tolerance=tolerance)


def compare_gradients(backprop, numerical, *, tolerance: float = 1e-6) -> GradientCheckResult:
    """The verdict of :func:`gradient_check` for two gradient dicts computed already.

    backprop, numerical: ``{name: array}`` with the same names and shapes.
    """
    result = GradientCheckResult(tolerance=tolerance)
    for name, g_num in numerical.items():
        g_bp = backprop[name]
        result.max_abs_diff[name] = float(np.max(np.abs(g_bp - g_num)))
        result.max_rel_diff[name] = relative_error(g_bp, g_num)
    return result
