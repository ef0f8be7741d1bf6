"""Leaky ReLU: a ReLU that lets a small slope through for negative inputs."""

from __future__ import annotations

from dlscratch.backend import get_array_module
from dlscratch.layers.activations import ACTIVATIONS
from dlscratch.layers.base import Layer
from dlscratch.registry import Option


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Layer):
    """``y = x`` where ``x > 0``, else ``alpha * x``;  ``dx = dout`` or ``alpha * dout``.

    Shape preserved. With ``alpha = 0`` it is the ReLU; a small positive ``alpha``
    (0.01 by default) keeps a gradient flowing through units whose input is negative,
    so they cannot "die" the way ReLU units can.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    preferred_init = "he"
    options = (
        Option(
            "alpha", float, 0.01, "slope for negative inputs", low=0.0, high=1.0, high_open=True
        ),
    )

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = self.options[0].validate(alpha)
        self.mask = None

    def forward(self, x, *, train: bool = False):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.where(self.mask, x, x * self.alpha)

    def backward(self, dout):
        xp = get_array_module(dout)
        return xp.where(self.mask, dout, dout * self.alpha)

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha:g})"
