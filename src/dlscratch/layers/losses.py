"""Output layers that end a network with its loss."""

from __future__ import annotations

from dlscratch.backend import get_array_module
from dlscratch.functions import as_class_labels, softmax_cross_entropy_labels


class SoftmaxWithLoss:
    """Softmax followed by cross-entropy, fused (section 5.6.3 of the book).

    ``forward(x, t)``: x are scores (N, C); t are one-hot labels (N, C) or
    integer labels (N,). Returns the mean loss per sample (a float).
    The softmax is computed in log space, so huge scores do not overflow.

    ``backward(dout=1)`` returns ``dout * (y - t) / N`` of shape (N, C): the
    famously clean gradient of this pairing.
    """

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.y = None
        self.labels = None
        self.loss = None

    def forward(self, x, t):
        self.labels = as_class_labels(t, x.shape)
        self.loss, self.y = softmax_cross_entropy_labels(x, self.labels)
        return self.loss

    def backward(self, dout=1.0):
        xp = get_array_module(self.y)
        n = self.y.shape[0]
        scale = dout / n
        dx = self.y * scale  # (y - t) * dout / N, with t one-hot at the labels
        dx[xp.arange(n), self.labels] -= scale
        return dx

    def __repr__(self) -> str:
        return "SoftmaxWithLoss()"


class IdentityWithLoss:
    """Identity output with the book's squared error, for regression.

    ``forward(x, t)`` returns ``0.5 * sum((x - t)**2) / N`` (x, t: (N, K));
    ``backward(dout=1)`` returns ``dout * (x - t) / N``.
    """

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.y = None
        self.t = None

    def forward(self, x, t):
        if x.shape != t.shape:
            raise ValueError(f"IdentityWithLoss: targets must have shape {x.shape}, got {t.shape}")
        self.y, self.t = x, t
        n = x.shape[0]
        diff = x - t
        return 0.5 * float((diff * diff).sum()) / n

    def backward(self, dout=1.0):
        return (self.y - self.t) * (dout / self.y.shape[0])

    def __repr__(self) -> str:
        return "IdentityWithLoss()"
