"""The one contract every layer follows."""

from __future__ import annotations

import numpy as np

from dlscratch.backend import get_array_module


def sum_over_batch(a, out=None):
    """``a.sum(axis=0)`` for a (N, D) array, computed as the product ``ones(N) @ a``.

    One BLAS matrix-vector product is several times faster than NumPy's
    reduction over the first axis at training sizes (the values agree up to
    rounding). ``out``: optional (D,) array to write into.
    """
    xp = get_array_module(a)
    return xp.matmul(_ones(a.shape[0], a.dtype, xp), a, out=out)


_ONES: dict = {}


def _ones(n, dtype, xp):
    """A read-only vector of ``n`` ones, kept between calls (NumPy only; saves an allocation)."""
    if xp is not np:
        return xp.ones(n, dtype=dtype)
    key = (n, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 32:  # many batch sizes (e.g. a last short batch per epoch)
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype=dtype)
        ones.flags.writeable = False
    return ones


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

    Two attributes let a network run its layers without waste (both are
    optional; a layer used on its own ignores them):

    * ``grad_out`` - arrays, keyed like ``params``, that :meth:`backward`
      writes the gradients into (``out=``) instead of allocating new ones.
      A network points them into one flat gradient buffer
      (:attr:`dlscratch.nets.Network.flat_grads`), so that an optimizer can
      update every parameter in a handful of vectorised operations. Empty for
      a standalone layer, whose ``grads`` are fresh arrays on every call.
    * ``input_grad`` - ``False`` when nobody needs the gradient with respect to
      the input (the first layer of a network, fed with data). A layer may
      then skip that computation and return ``None`` from :meth:`backward`;
      for the first ``Affine`` of an MNIST network it is the largest matrix
      product of the backward pass.
    """

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        #: Non-learnable state saved with the model (batch-norm running statistics).
        self.buffers: dict = {}
        #: Preallocated gradient arrays that backward writes into (see the class docstring).
        self.grad_out: dict = {}
        #: Whether backward must return the gradient with respect to the input.
        self.input_grad: bool = True

    def forward(self, x, *, train: bool = False):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x, *, train: bool = False):
        return self.forward(x, train=train)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
