"""Weight initialisation (section 6.2 of the notes).

* fixed std: ``W ~ N(0, std^2)`` (the book's ``0.01 * randn``);
* Xavier (Glorot): ``std = 1 / sqrt(n)``, for sigmoid and tanh;
* He: ``std = sqrt(2 / n)``, for ReLU;

where ``n`` is the number of inputs of the layer (its fan-in).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlscratch.backend import resolve_dtype

INIT_NAMES = ("he", "relu", "xavier", "sigmoid")


def xavier_std(fan_in: int) -> float:
    """Xavier/Glorot scale ``1 / sqrt(fan_in)``."""
    return 1.0 / math.sqrt(fan_in)


def he_std(fan_in: int) -> float:
    """He scale ``sqrt(2 / fan_in)``."""
    return math.sqrt(2.0 / fan_in)


def init_std(method, fan_in: int) -> float:
    """The standard deviation for ``method``: a positive number, 'xavier'/'sigmoid' or 'he'/'relu'.

    The aliases follow the book: 'relu' means He, 'sigmoid' means Xavier.
    """
    if isinstance(method, str):
        name = method.lower()
        if name in ("he", "relu"):
            return he_std(fan_in)
        if name in ("xavier", "sigmoid"):
            return xavier_std(fan_in)
        raise ValueError(
            f"unknown weight init {method!r}: use 'he', 'xavier' (aliases 'relu', 'sigmoid') "
            "or a positive standard deviation such as 0.01"
        )
    if isinstance(method, numbers.Real) and not isinstance(method, bool) and method > 0:
        return float(method)
    raise ValueError(f"weight init std must be a positive number, 'he' or 'xavier'; got {method!r}")


def init_weight(shape, method, rng=None, dtype=np.float32):
    """A weight matrix of ``shape`` (fan_in, fan_out) drawn from ``N(0, std^2)``.

    method: positive float (fixed std), 'xavier' or 'he'.
    rng: ``numpy.random.Generator`` or seed.  dtype: float32 or float64.
    """
    rng = np.random.default_rng(rng)
    std = init_std(method, shape[0])
    return (std * rng.standard_normal(shape)).astype(resolve_dtype(dtype))
