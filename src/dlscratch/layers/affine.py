"""The fully connected (affine) layer."""

from __future__ import annotations

from dlscratch.layers.base import Layer


class Affine(Layer):
    """``y = x @ W + b``.

    W: (D, M), b: (M,).  x: (N, D) or (N, d1, d2, ...) with ``d1*d2*... == D``
    (e.g. images (N, 1, 28, 28)), flattened for the product.

    Backward: ``dx = dout @ W.T`` (returned in x's original shape),
    ``dW = x.T @ dout``, ``db = dout.sum(axis=0)``.
    """

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
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r} expects {self.in_features} input features, got {x.shape[1]} "
                f"(input shape {self.original_x_shape})"
            )
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        W = self.params["W"]
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        dx = dout @ W.T
        return dx.reshape(self.original_x_shape)

    def __repr__(self) -> str:
        return f"Affine({self.in_features} -> {self.out_features})"
