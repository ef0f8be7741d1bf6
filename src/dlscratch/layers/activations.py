"""Activation layers: ReLU, Sigmoid, Tanh (and their backward passes).

Written to allocate one array per pass: each layer computes its output in a
fresh array and then works on it in place (``out=``, ``+=``), never touching
its input or ``dout`` (but for ``Relu(inplace=True)``, which is asked to).
"""

from __future__ import annotations

from dlscratch import fast
from dlscratch.backend import get_array_module
from dlscratch.functions import sigmoid
from dlscratch.layers.base import Layer
from dlscratch.registry import Registry

#: Activation layers by the names networks accept. Each class may declare ``options``
#: (its constructor's keyword arguments); a module added to ``dlscratch.layers``
#: registers its activation with ``@ACTIVATIONS.register(name)``.
ACTIVATIONS = Registry("activation", package="dlscratch.layers")


@ACTIVATIONS.register("relu")
class Relu(Layer):
    """``y = max(0, x)``; ``dx = dout`` where ``x > 0``, else 0.  Shape preserved.

    Backward recomputes the mask from the cached output (``y > 0`` exactly
    where ``x > 0``) and applies it with one multiplication, which is several
    times faster than zeroing through a boolean index (``dx[mask] = 0``).

    ``inplace=True`` writes the output over the input, as PyTorch's
    ``ReLU(inplace=True)`` does: one array fewer per pass. Backward needs only
    the output, so this is safe wherever nobody else keeps the input; the
    convolutional networks use it after their convolution and pooling layers,
    whose outputs are fresh arrays that those layers do not keep.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    preferred_init = "he"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)
        self.out = None
        self._zeros: dict = {}

    def forward(self, x, *, train: bool = False):
        # max(x, 0), fast: see dlscratch.fast.relu
        self.out = fast.relu(x, self._zeros, inplace=self.inplace)
        return self.out

    def __repr__(self) -> str:
        return "Relu(inplace=True)" if self.inplace else "Relu()"

    def backward(self, dout):
        return dout * (self.out > 0)


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``; ``dx = dout * y * (1 - y)``.  Shape preserved.

    Computed as ``0.5 * (1 + tanh(x / 2))`` (see :func:`dlscratch.functions.sigmoid`):
    no overflow for large ``|x|``.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def forward(self, x, *, train: bool = False):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        y = self.out
        dx = 1.0 - y
        dx *= y
        dx *= dout
        return dx


@ACTIVATIONS.register("tanh")
class Tanh(Layer):
    """``y = tanh(x)``; ``dx = dout * (1 - y**2)``.  Shape preserved."""

    row_wise = True  # each row on its own: see Layer.row_wise

    def __init__(self) -> None:
        super().__init__()
        self.out = None

    def forward(self, x, *, train: bool = False):
        xp = get_array_module(x)
        self.out = xp.tanh(x)
        return self.out

    def backward(self, dout):
        xp = get_array_module(dout)
        y = self.out
        dx = y * y
        xp.subtract(1.0, dx, out=dx)
        dx *= dout
        return dx

