"""Activation layers: ReLU, Sigmoid, Tanh (and their backward passes)."""

from __future__ import annotations

from dlscratch.backend import get_array_module
from dlscratch.functions import sigmoid
from dlscratch.layers.base import Layer


class Relu(Layer):
    """``y = max(0, x)``; ``dx = dout`` where ``x > 0``, else 0.  Shape preserved."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = None  # True where x <= 0

    def forward(self, x, *, train: bool = False):
        xp = get_array_module(x)
        self.mask = x <= 0
        return xp.maximum(x, 0)

    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``; ``dx = dout * y * (1 - y)``.  Shape preserved."""

    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def forward(self, x, *, train: bool = False):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return dout * (1.0 - y) * y


class Tanh(Layer):
    """``y = tanh(x)``; ``dx = dout * (1 - y**2)``.  Shape preserved."""

    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def forward(self, x, *, train: bool = False):
        xp = get_array_module(x)
        self.out = xp.tanh(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return dout * (1.0 - y * y)


#: Activation layers by the names networks accept.
ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}
