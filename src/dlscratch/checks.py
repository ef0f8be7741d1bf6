"""Input checks with one wording: what was wrong, and what would be right.

Every public entry point (the run configuration, the Trainer, the networks' public
methods, the registries) validates its input once through these helpers, so that the
same rule reads the same everywhere::

    >>> positive_int("epochs", 0)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be a whole number >= 1, got 0
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlscratch.backend import get_array_module

_MISSING = object()


def fail(message: str, value=_MISSING):
    """Raise ``ValueError(message[, got value])``."""
    if value is _MISSING:
        raise ValueError(message)
    raise ValueError(f"{message}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value, *, maximum: int | None = None) -> int:
    """``value`` as an int >= 1 (and <= maximum when given)."""
    if not _is_int(value) or value < 1:
        fail(f"{name} must be a whole number >= 1", value)
    if maximum is not None and value > maximum:
        fail(f"{name} must be at most {maximum:,}", value)
    return int(value)


def non_negative_int(name: str, value) -> int:
    if not _is_int(value) or value < 0:
        fail(f"{name} must be a whole number >= 0", value)
    return int(value)


def positive_float(name: str, value) -> float:
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        fail(f"{name} must be a finite number > 0", value)
    return float(value)


def fraction(name: str, value, *, inclusive_zero: bool = True) -> float:
    """A number in [0, 1) (or (0, 1) with ``inclusive_zero=False``)."""
    low_ok = (value >= 0) if inclusive_zero else (value > 0)
    if not _is_real(value) or not math.isfinite(value) or not low_ok or value >= 1:
        fail(f"{name} must be a number in {'[' if inclusive_zero else '('}0, 1)", value)
    return float(value)


def check_pair(x, t, what: str = "data", *, features: bool = False):
    """``x`` and ``t`` as arrays holding the same, non-zero number of samples.

    ``features=True``: ``x`` must also be a batch of samples, shape (N, ...), with
    no NaN or infinity (checked once here, where the data enters, not per step).
    """
    if x is None or t is None:
        fail(f"{what}: give both the inputs and the labels")
    x = x if hasattr(x, "shape") else np.asarray(x)
    t = t if hasattr(t, "shape") else np.asarray(t)
    if x.ndim < 1 or t.ndim < 1:
        fail(f"{what}: inputs and labels must be arrays with a sample axis")
    if features and x.ndim < 2:
        fail(f"{what} inputs must have shape (N, features), got {x.shape}")
    if x.shape[0] != t.shape[0]:
        fail(f"{what}: {x.shape[0]} inputs but {t.shape[0]} labels; they must match")
    if x.shape[0] == 0:
        fail(f"{what} is empty")
    if features and x.dtype.kind == "f" and not bool(get_array_module(x).isfinite(x).all()):
        fail(f"{what} inputs contain NaN or infinity; clean or re-normalise the data")
    return x, t


def assign_in_place(target, value, what: str) -> None:
    """Copy ``value`` into the array ``target`` (a live parameter), checked first.

    The shape must match, the values must be real numbers, and after the cast to
    ``target``'s dtype they must be finite (1e300 is infinity in float32). Nothing
    is written when a check fails. ``what`` names the target in the messages.
    """
    xp = get_array_module(target)
    array = xp.asarray(value)
    if array.shape != target.shape:
        fail(f"{what} has shape {target.shape}; the new value has shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} takes real numbers; the new value has dtype {array.dtype}")
    with np.errstate(over="ignore"):  # an overflow in the cast is reported just below
        cast = array.astype(target.dtype, copy=False)
    if cast.size and not bool(xp.isfinite(cast).all()):
        fail(
            f"{what}: the new value holds NaN or infinity (after the cast to {target.dtype}); "
            "load finite weights"
        )
    target[...] = cast
