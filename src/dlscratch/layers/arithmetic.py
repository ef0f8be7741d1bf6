"""Multiplication and addition nodes: the computational graphs of chapter 5.

These take two inputs, so they are graph nodes rather than network layers:
``forward(x, y)`` and ``backward(dout) -> (dx, dy)``.

    >>> apple = MulLayer(); tax = MulLayer()
    >>> price = tax.forward(apple.forward(100, 2), 1.1)    # 220.0
    >>> d_apple_price, d_tax = tax.backward(1)             # 1.1, 200
    >>> d_apple, d_num = apple.backward(d_apple_price)     # 2.2, 110.0
"""

from __future__ import annotations


class MulLayer:
    """``out = x * y``; backward swaps the inputs: ``dx = dout * y``, ``dy = dout * x``."""

    def __init__(self) -> None:
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("MulLayer.backward called before forward")
        return dout * self.y, dout * self.x

    def __repr__(self) -> str:
        return "MulLayer()"


class AddLayer:
    """``out = x + y``; backward passes ``dout`` through unchanged to both inputs."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1

    def __repr__(self) -> str:
        return "AddLayer()"
