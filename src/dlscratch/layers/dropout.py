"""Dropout (Srivastava et al., 2014; section 6.4.3 of the notes), inverted form."""

from __future__ import annotations

import numpy as np

from dlscratch.backend import get_array_module
from dlscratch.layers.base import Layer

#: Random bits per unit: the drop probability is ``ratio`` rounded to a multiple of 2**-16.
_BITS = 16


class Dropout(Layer):
    """Zero each activation with probability ``ratio`` during training.

    *Inverted* dropout: kept activations are scaled by ``1 / (1 - ratio)`` at
    training time, so inference is the identity and needs no rescaling (the
    book instead multiplies by ``1 - ratio`` at test time; the expected
    outputs are the same).

    rng: a ``numpy.random.Generator`` (or seed) - the masks are reproducible.
    Set ``frozen = True`` to reuse the last mask (used by gradient checks).

    Speed note: a unit is kept when 16 raw random bits, read straight from the
    generator (``bit_generator.random_raw``, four units per 64-bit draw), are at
    least ``round(ratio * 2**16)``. That is about five times cheaper than
    drawing one float per unit, and the drop probability is off from ``ratio``
    by less than ``2**-17``. On a GPU the bits are drawn the same way and
    copied over, so the masks equal the CPU ones for the same seed.
    """

    def __init__(self, ratio: float = 0.5, rng=None) -> None:
        super().__init__()
        if not 0 <= ratio < 1:
            raise ValueError(f"dropout ratio must be in [0, 1), got {ratio}")
        self.ratio = ratio
        self.rng = np.random.default_rng(rng)
        self.frozen = False
        self.mask = None  # scaled keep-mask: 0 or 1 / (1 - ratio)

    def forward(self, x, *, train: bool = False):
        if not train or self.ratio == 0:
            self.mask = None if not self.frozen else self.mask
            return x
        if not (self.frozen and self.mask is not None and self.mask.shape == x.shape):
            self.mask = self._new_mask(x)
        return x * self.mask

    def _new_mask(self, x):
        """A fresh scaled keep-mask of x's shape, dtype and device."""
        xp = get_array_module(x)
        n = x.size
        raw = self.rng.bit_generator.random_raw(-(-n // 4))  # 64 bits -> four 16-bit numbers
        bits = raw.view(np.uint16)[:n].reshape(x.shape)
        if xp is not np:
            bits = xp.asarray(bits)
        threshold = min(round(self.ratio * 2**_BITS), 2**_BITS - 1)
        keep = bits >= threshold
        return xp.multiply(keep, 1.0 / (1.0 - self.ratio), dtype=x.dtype)

    def backward(self, dout):
        if self.mask is None:
            return dout.copy()
        return dout * self.mask

    def __repr__(self) -> str:
        return f"Dropout(ratio={self.ratio})"
