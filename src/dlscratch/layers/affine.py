"""The fully connected (affine) layer."""

from __future__ import annotations

from dlscratch import fast
from dlscratch.backend import get_array_module
from dlscratch.layers.aliases import grad_alias, param_alias
from dlscratch.layers.base import Layer


class Affine(Layer):
    """``y = x @ W + b``.

    W: (D, M), b: (M,).  x: (N, D) or (N, d1, d2, ...) with ``d1*d2*... == D``
    (e.g. images (N, 1, 28, 28)), flattened for the product.

    Backward: ``dx = dout @ W.T`` (returned in x's original shape),
    ``dW = x.T @ dout``, ``db = dout.sum(axis=0)``.

    Inside a network the gradients are written into the network's flat
    gradient buffer (``grad_out``), and the first layer skips ``dx``, which
    nobody needs (``input_grad = False``; see :class:`~dlscratch.layers.Layer`).

    Book aliases: ``.W``, ``.b`` (assignment copies in place), ``.dW``, ``.db``.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    W = param_alias("W")
    b = param_alias("b")
    dW = grad_alias("W")
    db = grad_alias("b")

    def __init__(self, W, b) -> None:
        super().__init__()
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"Affine needs W (D, M) and b (M,), got {W.shape} and {b.shape}")
        self.params = {"W": W, "b": b}
        self.grads = {"W": None, "b": None}
        self.x = None
        self.original_x_shape = None

    @property
    def in_features(self) -> int:
        return self.params["W"].shape[0]

    @property
    def out_features(self) -> int:
        return self.params["W"].shape[1]

    def forward(self, x, *, train: bool = False):
        self.original_x_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r} expects {self.in_features} input features, got {x.shape[1]} "
                f"(input shape {self.original_x_shape})"
            )
        self.x = x
        out = x @ self.params["W"]
        out += self.params["b"]  # in place: `out` is a fresh array
        return out

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("Affine.backward called before forward")
        xp = get_array_module(dout)
        # out=None allocates; a network passes views into its flat gradient buffer.
        self.grads["W"] = xp.matmul(self.x.T, dout, out=self.grad_out.get("W"))
        # = dout.sum(axis=0), fast: see dlscratch.fast.sum_over_batch
        self.grads["b"] = fast.sum_over_batch(dout, out=self.grad_out.get("b"))
        if not self.input_grad:
            return None
        dx = dout @ fast.transposed(self.params["W"])  # = W.T, fast: see dlscratch.fast
        return dx.reshape(self.original_x_shape)

    def __repr__(self) -> str:
        return f"Affine({self.in_features} -> {self.out_features})"
