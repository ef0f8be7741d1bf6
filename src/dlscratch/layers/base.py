"""The one contract every layer follows."""

from __future__ import annotations


class Layer:
    """Base class of all network layers.

    A layer owns two dicts keyed by short names (``"W"``, ``"b"``, ...):

    * ``params`` - its learnable arrays (empty for parameter-free layers);
    * ``grads``  - the gradients of the loss with respect to ``params``,
      filled by :meth:`backward`.

    ``forward(x, *, train=False)`` computes the output and caches only what
    ``backward`` needs; ``train`` switches layers whose behaviour differs at
    training time (dropout, batch norm). ``backward(dout)`` takes the gradient
    of the loss with respect to the output and returns the gradient with
    respect to the input. It never modifies ``dout``.
    """

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        #: Non-learnable state saved with the model (batch-norm running statistics).
        self.buffers: dict = {}

    def forward(self, x, *, train: bool = False):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x, *, train: bool = False):
        return self.forward(x, train=train)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
