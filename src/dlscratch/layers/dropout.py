"""Dropout (Srivastava et al., 2014; section 6.4.3 of the notes), inverted form."""

from __future__ import annotations

import numpy as np

from dlscratch.layers.base import Layer


class Dropout(Layer):
    """Zero each activation with probability ``ratio`` during training.

    *Inverted* dropout: kept activations are scaled by ``1 / (1 - ratio)`` at
    training time, so inference is the identity and needs no rescaling (the
    book instead multiplies by ``1 - ratio`` at test time; the expected
    outputs are the same).

    rng: a ``numpy.random.Generator`` (or seed) - the masks are reproducible.
    Set ``frozen = True`` to reuse the last mask (used by gradient checks).
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
            keep = self.rng.random(x.shape, dtype=np.float32) >= self.ratio
            self.mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.ratio))
        return x * self.mask

    def backward(self, dout):
        if self.mask is None:
            return dout.copy()
        return dout * self.mask

    def __repr__(self) -> str:
        return f"Dropout(ratio={self.ratio})"
