"""Mini-batches: shuffled epochs or the book's random draws with replacement.

:class:`BatchSampler` yields index arrays; :func:`iterate_minibatches` and
:func:`sample_minibatch` apply them to data. Data can stay uint8 in memory and
be converted per batch with :func:`to_float`.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral

import numpy as np

from dlscratch.backend import get_array_module
from dlscratch.checks import check_pair

__all__ = ["BatchSampler", "as_rng", "iterate_minibatches", "sample_minibatch", "to_float"]

MODES = ("epoch", "random")


def as_rng(rng=None) -> np.random.Generator:
    """Return a ``numpy.random.Generator``: ``rng`` itself, one seeded by an int, or a fresh one."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, Integral):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _check_batch_size(batch_size, n: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of samples ({n})")
    return int(batch_size)


def _check_pair(x, t) -> int:
    return len(check_pair(x, t, "x and t")[0])


class BatchSampler:
    """Yield index arrays for one epoch of mini-batches.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch, 1 to ``n``.
    mode : {"epoch", "random"}
        ``"epoch"``: every sample exactly once per pass (shuffled unless
        ``shuffle=False``); the last batch is smaller unless ``drop_last``.
        ``"random"``: ``max(n // batch_size, 1)`` independent draws of
        ``rng.choice(n, batch_size)`` (with replacement, as the book trains).
    rng : numpy.random.Generator or int or None
        Source of randomness (an int is a seed).
    shuffle : bool
        Epoch mode only: shuffle the order each pass.
    drop_last : bool
        Epoch mode only: skip a final batch smaller than ``batch_size``.

    Notes
    -----
    Iterating again starts a new pass that continues the same ``rng`` stream,
    so successive epochs are shuffled differently but reproducibly.
    """

    def __init__(self, n, batch_size, *, mode="epoch", rng=None, shuffle=True, drop_last=False):
        if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.n = int(n)
        self.batch_size = _check_batch_size(batch_size, self.n)
        self.mode = mode
        self.rng = as_rng(rng)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        if self.mode == "random":
            return max(self.n // self.batch_size, 1)
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.mode == "random":
            for _ in range(len(self)):
                yield self.rng.choice(self.n, self.batch_size)
            return
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for i in range(len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]


def iterate_minibatches(
    x, t, batch_size, *, rng=None, shuffle=True, drop_last=False, mode="epoch"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, t_batch)`` over one epoch.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, ...)
    t : numpy.ndarray, shape (N, ...)
    batch_size : int
        1 to N.
    rng, shuffle, drop_last, mode
        As for :class:`BatchSampler`.

    Yields
    ------
    x_batch, t_batch : numpy.ndarray
        Copies (fancy-indexed) of shape ``(B, ...)``, ``B <= batch_size``,
        same dtypes as ``x`` and ``t``.
    """
    n = _check_pair(x, t)
    sampler = BatchSampler(n, batch_size, mode=mode, rng=rng, shuffle=shuffle, drop_last=drop_last)
    for index in sampler:
        yield x[index], t[index]


def sample_minibatch(x, t, batch_size, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one random mini-batch, with replacement, as the book does.

    Equivalent to ``mask = rng.choice(N, batch_size); x[mask], t[mask]``.

    Returns
    -------
    x_batch, t_batch : numpy.ndarray
        Shapes ``(batch_size, ...)``, dtypes of ``x`` and ``t``.
    """
    n = _check_pair(x, t)
    size = _check_batch_size(batch_size, n)
    mask = as_rng(rng).choice(n, size)
    return x[mask], t[mask]


def to_float(xb, dtype=np.float32) -> np.ndarray:
    """Convert a batch of uint8 pixels to floats in [0, 1]: the one place this happens.

    The Trainer, evaluation and the estimator all call it, on NumPy or CuPy arrays.

    Parameters
    ----------
    xb : numpy.ndarray or cupy.ndarray
        uint8 pixels 0-255 (divided by 255), or other numbers (cast to ``dtype``
        only, not rescaled).
    dtype : numpy dtype
        Floating output type, default float32.

    Returns
    -------
    numpy.ndarray
        Same shape as ``xb``, of ``dtype``; bit-identical to
        ``xb.astype(dtype) / 255`` for uint8 input.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    if not hasattr(xb, "dtype"):
        xb = np.asarray(xb)
    xp = get_array_module(xb)
    if xb.dtype == np.uint8:
        return xp.divide(xb, dtype.type(255), dtype=dtype)
    if xb.dtype.kind in "fiub":
        return xb.astype(dtype, copy=False)
    raise TypeError(f"expected uint8 pixels or a numeric array, got {xb.dtype}")
