"""Activation and loss functions of chapters 3-4, numerically stable and batched.

Every function accepts a single sample (1-D) or a batch (2-D, rows are samples)
and works on NumPy or CuPy arrays alike.
"""

from __future__ import annotations

import numpy as np

from dlscratch.backend import get_array_module

#: Added inside the logarithm of the cross-entropy so that log(0) never happens.
CEE_EPS = 1e-7


def step_function(x):
    """Step activation: 1 where ``x > 0``, else 0 (integer output, as in the notes)."""
    xp = get_array_module(x)
    return (xp.asarray(x) > 0).astype(np.int64)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, without overflow warnings.

    Written as ``0.5 * (1 + tanh(x / 2))``, an identity that is exact in real
    arithmetic and never evaluates ``exp`` of a large argument, so
    ``sigmoid(-1000)`` is 0.0 with no ``RuntimeWarning``.
    """
    xp = get_array_module(x)
    y = xp.asarray(x) * 0.5  # the one new array; the rest works in place (a scalar for 0-d x)
    y = xp.tanh(y, out=y) if y.ndim else xp.tanh(y)
    y += 1.0
    y *= 0.5
    return y


def relu(x):
    """Rectified linear unit ``max(0, x)``."""
    xp = get_array_module(x)
    return xp.maximum(0, x)


def tanh(x):
    """Hyperbolic tangent."""
    xp = get_array_module(x)
    return xp.tanh(x)


def identity_function(x):
    """Identity: the output activation for regression."""
    return x


def softmax(x):
    """Softmax over the last axis, with the overflow guard.

    ``exp(a - max(a)) / sum(exp(a - max(a)))``: subtracting the row maximum
    changes nothing mathematically but keeps ``exp`` finite, so
    ``softmax([1010, 1000, 990])`` is well defined.

    x: (C,) or (N, C) -> same shape, each row summing to 1.
    """
    xp = get_array_module(x)
    x = xp.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = xp.exp(shifted)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(x):
    """``log(softmax(x))`` over the last axis, computed without forming ``softmax``."""
    xp = get_array_module(x)
    x = xp.asarray(x, dtype=np.result_type(x, np.float32) if xp is np else None)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def mean_squared_error(y, t):
    """The book's "mean squared error": ``0.5 * sum((y - t)**2)``.

    Note the factor 0.5 and the *sum* (not a mean): this is the definition
    used throughout the notes, chosen so that the derivative is simply
    ``y - t``. For a batch it sums over every element. See
    :func:`mean_squared_error_mean` for the per-sample average.
    """
    xp = get_array_module(y, t)
    y, t = xp.asarray(y), xp.asarray(t)
    _check_same_shape(y, t, "mean_squared_error")
    return 0.5 * float(((y - t) ** 2).sum())


def mean_squared_error_mean(y, t):
    """``0.5 * sum((y - t)**2) / N``: the book's MSE averaged over the batch."""
    xp = get_array_module(y, t)
    y, t = xp.asarray(y), xp.asarray(t)
    _check_same_shape(y, t, "mean_squared_error_mean")
    n = y.shape[0] if y.ndim > 1 else 1
    return 0.5 * float(((y - t) ** 2).sum()) / n


def cross_entropy_error(y, t):
    """Cross-entropy ``-sum(t * log(y + 1e-7)) / N`` for probabilities ``y``.

    y: (C,) or (N, C) predicted probabilities (e.g. softmax output).
    t: one-hot labels of the same shape as ``y``, or integer class labels
       of shape () / (N,).

    A single sample is treated as a batch of one, so the result is always the
    mean loss per sample. The ``1e-7`` guard keeps ``log(0)`` finite.
    """
    xp = get_array_module(y, t)
    y = xp.asarray(y)
    t = xp.asarray(t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.ndim == 1 and t.size == y.size else t.reshape(1)
    n = y.shape[0]
    if t.shape == y.shape:  # one-hot (or any target distribution)
        return float(-(t * xp.log(y + CEE_EPS)).sum() / n)
    labels = as_class_labels(t, y.shape)
    return float(-xp.log(y[xp.arange(n), labels] + CEE_EPS).sum() / n)


def softmax_cross_entropy(logits, t):
    """Fused softmax + cross-entropy: returns ``(loss, probabilities)``.

    Uses ``log_softmax``, so it is exact for any logits (no ``1e-7`` guard is
    needed and huge logits do not overflow). ``t`` is one-hot (N, C) or
    integer labels (N,).
    """
    return softmax_cross_entropy_labels(logits, as_class_labels(t, logits.shape))


def softmax_cross_entropy_labels(logits, labels):
    """:func:`softmax_cross_entropy` for integer ``labels`` (N,) already checked.

    With ``z = logits - max(logits)`` per row (the overflow guard), the loss of a
    row is ``log(sum(exp(z))) - z[label]`` and the probabilities are
    ``exp(z) / sum(exp(z))``: one ``exp`` serves both.
    """
    xp = get_array_module(logits)
    n = logits.shape[0]
    # Work on a transposed copy (C, N): every reduction then runs across the batch in
    # vector registers instead of over rows of only C = 10 classes, about twice as fast.
    # The probabilities are returned as its transpose, a view of shape (N, C).
    z = xp.ascontiguousarray(logits.T)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    z -= z.max(axis=0)
    picked = z[labels, xp.arange(n)]
    xp.exp(z, out=z)
    sums = z.sum(axis=0)
    loss = float((xp.log(sums) - picked).sum()) / n
    z /= sums
    return loss, z.T


def as_class_labels(t, y_shape):
    """Return integer labels of shape (N,) from one-hot (N, C) or integer (N,) ``t``.

    Raises ``ValueError`` that names the expected shapes when ``t`` fits neither
    form, or when a label lies outside ``[0, C)``.
    """
    xp = get_array_module(t)
    t = xp.asarray(t)
    n, c = y_shape[0], y_shape[-1]
    if t.shape == tuple(y_shape):
        return t.argmax(axis=1)
    if t.shape == (n,):
        if t.dtype.kind not in "iu":  # signed or unsigned integers
            if t.dtype.kind == "f" and bool(xp.all(t == xp.round(t))):
                t = t.astype(np.int64)
            else:
                raise TypeError(f"integer class labels expected, got dtype {t.dtype}")
        # One reduction checks both bounds: viewed as unsigned, a negative label is huge.
        unsigned = t.view(f"u{t.dtype.itemsize}") if t.dtype.kind == "i" else t
        if n and int(unsigned.max()) >= c:
            raise ValueError(
                f"labels must lie in [0, {c}) for {c} classes, "
                f"got values from {int(t.min())} to {int(t.max())}"
            )
        return t
    raise ValueError(
        f"labels must be one-hot with shape {tuple(y_shape)} or integers with shape ({n},), "
        f"got shape {t.shape}"
    )


def _check_same_shape(y, t, name):
    if y.shape != t.shape:
        raise ValueError(f"{name}: y and t must have the same shape, got {y.shape} and {t.shape}")
