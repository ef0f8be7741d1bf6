"""Shuffle a dataset and hold part of it out for validation (book, ch. 6.5)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from dlscratch.data.batching import _check_pair, as_rng

__all__ = ["shuffle_dataset", "train_val_split"]


def shuffle_dataset(x, t, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``x`` and ``t`` in the same random order (copies).

    Parameters
    ----------
    x : numpy.ndarray, shape (N, ...)
    t : numpy.ndarray, shape (N, ...)
    rng : numpy.random.Generator or int or None

    Returns
    -------
    x_shuffled, t_shuffled : numpy.ndarray
        Same shapes and dtypes as the inputs.
    """
    order = as_rng(rng).permutation(_check_pair(x, t))
    return x[order], t[order]


def _val_count(n: int, val_fraction, val_size) -> int:
    if val_size is not None:
        if isinstance(val_size, bool) or not isinstance(val_size, Integral):
            raise TypeError(f"val_size must be an int, got {val_size!r}")
        count = int(val_size)
        what = f"val_size={count}"
    else:
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, Real):
            raise TypeError(f"val_fraction must be a number, got {val_fraction!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        count = int(n * val_fraction)
        what = f"val_fraction={val_fraction}"
    if not 1 <= count <= n - 1:
        raise ValueError(
            f"{what} of {n} samples gives {count} validation samples; need 1 to {n - 1} "
            f"so that both parts are non-empty"
        )
    return count


def train_val_split(
    x, t, val_fraction=0.2, *, val_size=None, rng=None, shuffle=True, stratify=False
):
    """Split into training and validation parts, like the book's shuffle-then-slice.

    The data is shuffled (unless ``shuffle=False``), then the first
    ``int(N * val_fraction)`` (or ``val_size``) samples become the validation
    set and the rest the training set. With ``stratify=True`` every class
    gives the validation set its share of samples (largest remainders decide
    the rounding), so a small or unbalanced dataset keeps all its classes on
    both sides; both parts are then in random order.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, ...)
    t : numpy.ndarray, shape (N, ...)
    val_fraction : float
        Share held out, in (0, 1). Ignored when ``val_size`` is given.
    val_size : int, optional
        Exact number of validation samples, 1 to N - 1.
    rng : numpy.random.Generator or int or None
        Randomness for the shuffle (an int is a seed).
    shuffle : bool
        Shuffle before splitting (a stratified split always draws at random).
    stratify : bool
        Keep each class's share in both parts; ``t`` holds integer labels (N,)
        or one-hot rows (N, C).

    Returns
    -------
    (x_train, t_train), (x_val, t_val)
        Arrays of ``N - V`` and ``V`` samples, dtypes unchanged. With
        ``shuffle=True`` they are new arrays; without, views of the inputs.
    """
    count = _val_count(_check_pair(x, t), val_fraction, val_size)
    if stratify:
        val, train = _stratified_indices(t, count, as_rng(rng))
        return (x[train], t[train]), (x[val], t[val])
    if shuffle:
        x, t = shuffle_dataset(x, t, rng)
    return (x[count:], t[count:]), (x[:count], t[:count])


def _stratified_indices(t, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) index arrays with ``count`` validation samples, per-class shares."""
    t = np.asarray(t)
    labels = t.argmax(axis=1) if t.ndim == 2 else t
    if labels.ndim != 1:
        raise ValueError(f"stratify needs labels of shape (N,) or one-hot (N, C), got {t.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == k)) for k in range(len(classes))]
    sizes = np.array([len(m) for m in members])
    exact = sizes * (count / len(labels))
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: count - take.sum()]:
        take[k] += 1  # largest remainders round up, until the total is exact
    val = np.concatenate([m[:n] for m, n in zip(members, take)])
    train = np.concatenate([m[n:] for m, n in zip(members, take)])
    return rng.permutation(val), rng.permutation(train)
