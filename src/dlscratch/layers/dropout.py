"""Dropout (Srivastava et al., 2014; section 6.4.3 of the notes): inverted or the book's form."""

from __future__ import annotations

import numpy as np

from dlscratch.backend import get_array_module
from dlscratch.layers.base import Layer

#: Random bits per unit: the drop probability is ``ratio`` rounded to a multiple of 2**-16.
_BITS = 16


class Dropout(Layer):
    """Zero each activation with probability ``ratio`` during training.

    Two forms, chosen by ``scale``:

    * ``"inverted"`` (default): kept activations are scaled by ``1 / (1 - ratio)``
      at training time (``x * mask / (1 - ratio)``), so inference is the identity.
    * ``"book"``: the book's form: training multiplies by the 0/1 mask only
      (``x * mask``), and inference multiplies by ``1 - ratio`` instead.

    At test time both give outputs whose scale matches training's expected
    value, but they are *not* equivalent networks: the activations, and so
    the gradients, seen in training differ by the factor ``1 / (1 - ratio)``
    (with plain SGD the two train differently, as if with different learning
    rates for the layers after the dropout), and weights trained in one form
    give different test outputs in the other. Use ``"book"`` for the book's
    trained weights (``deep_convnet_params.pkl``) to reproduce its accuracy.

    rng: a ``numpy.random.Generator`` (or seed) - the masks are reproducible.
    Set ``frozen = True`` to reuse the last mask (used by gradient checks).

    Speed note: a unit is kept when 16 raw random bits, read straight from the
    generator (``bit_generator.random_raw``, four units per 64-bit draw), are at
    least ``round(ratio * 2**16)``. That is about five times cheaper than
    drawing one float per unit, and the drop probability is off from ``ratio``
    by less than ``2**-17``. On a GPU the bits are drawn the same way and
    copied over, so the masks equal the CPU ones for the same seed.
    """

    SCALES = ("inverted", "book")

    def __init__(self, ratio: float = 0.5, rng=None, scale: str = "inverted") -> None:
        super().__init__()
        if not 0 <= ratio < 1:
            raise ValueError(f"dropout ratio must be in [0, 1), got {ratio}")
        if scale not in self.SCALES:
            raise ValueError(f"dropout scale must be one of {self.SCALES}, got {scale!r}")
        self.ratio = ratio
        self.scale = scale
        self.rng = np.random.default_rng(rng)
        self.frozen = False
        self.mask = None  # keep-mask: 0 or 1 / (1 - ratio) (inverted), 0 or 1 (book)
        self._test_scale = None  # set by a test-time forward of the book's form

    def forward(self, x, *, train: bool = False):
        self._test_scale = None
        if not train or self.ratio == 0:
            self.mask = None if not self.frozen else self.mask
            if self.scale == "book" and self.ratio and not train:
                self._test_scale = 1.0 - self.ratio
                return x * self._test_scale
            return x
        if not (self.frozen and self.mask is not None and self.mask.shape == x.shape):
            self.mask = self._new_mask(x)
        return x * self.mask

    def _new_mask(self, x):
        """A fresh keep-mask of x's shape, dtype and device (scaled in the inverted form)."""
        xp = get_array_module(x)
        n = x.size
        raw = self.rng.bit_generator.random_raw(-(-n // 4))  # 64 bits -> four 16-bit numbers
        bits = raw.view(np.uint16)[:n].reshape(x.shape)
        if xp is not np:
            bits = xp.asarray(bits)
        threshold = min(round(self.ratio * 2**_BITS), 2**_BITS - 1)
        keep = bits >= threshold
        kept_value = 1.0 / (1.0 - self.ratio) if self.scale == "inverted" else 1.0
        return xp.multiply(keep, kept_value, dtype=x.dtype)

    def backward(self, dout):
        if self._test_scale is not None:
            return dout * self._test_scale
        if self.mask is None:
            return dout.copy()
        return dout * self.mask

    def __repr__(self) -> str:
        if self.scale == "book":
            return f"Dropout(ratio={self.ratio}, scale='book')"
        return f"Dropout(ratio={self.ratio})"
