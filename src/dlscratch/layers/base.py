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

    #: Whether in training each row of a batch goes through the layer on its own: no
    #: statistics across rows (batch norm), no random draws that follow the rows' order
    #: (dropout). A network whose layers all are row-wise can split a batch among
    #: threads and add up the parts' gradients (:mod:`dlscratch.nets.parallel`).
    row_wise: bool = False

    #: For activations: the weight initialisation that keeps their outputs spread (section
    #: 6.2): "he" for ReLU-like units, "xavier" for sigmoid-like ones.
    preferred_init: str = "xavier"

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
