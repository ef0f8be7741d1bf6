"""Output layers that end a network with its loss."""

from __future__ import annotations

from dlscratch.backend import get_array_module
from dlscratch.functions import as_class_labels, sigmoid, softmax_cross_entropy_labels


class LossLayer:
    """Base of the output layers: ``forward(x, t) -> float`` and ``backward(dout=1) -> dx``.

    A loss layer has no parameters; the empty ``params``/``grads``/``buffers``
    let a network treat it like any other layer.
    """

    #: The loss is the mean of one loss per row, and ``backward(dout)`` scales by
    #: ``dout / N`` (what :mod:`dlscratch.nets.parallel` relies on to split a batch).
    row_wise = True

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxWithLoss(LossLayer):
    """Softmax followed by cross-entropy, fused (section 5.6.3 of the book).

    ``forward(x, t)``: x are scores (N, C); t are one-hot labels (N, C) or
    integer labels (N,). Returns the mean loss per sample (a float).
    The softmax is computed in log space, so huge scores do not overflow.

    ``backward(dout=1)`` returns ``dout * (y - t) / N`` of shape (N, C): the
    famously clean gradient of this pairing.
    """

    def __init__(self) -> None:
        super().__init__()
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


class IdentityWithLoss(LossLayer):
    """Identity output with the book's squared error, for regression.

    ``forward(x, t)`` returns ``0.5 * sum((x - t)**2) / N`` (x, t: (N, K));
    ``backward(dout=1)`` returns ``dout * (x - t) / N``.
    """

    def __init__(self) -> None:
        super().__init__()
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


class SigmoidWithLoss(LossLayer):
    """Sigmoid followed by binary cross-entropy, fused: the output layer for yes/no questions.

    The book pairs softmax with cross-entropy for classes and notes that a single
    sigmoid output serves two-class problems; this is that pairing.

    ``forward(x, t)``: x are scores of shape (N,) or (N, 1); t the targets in
    [0, 1] (usually 0 or 1) of the same shape. Returns the mean over samples of
    ``-(t log y + (1 - t) log(1 - y))`` with ``y = sigmoid(x)``, computed from the
    scores as ``max(x, 0) - x t + log(1 + exp(-|x|))`` so that large scores
    neither overflow nor lose the loss to ``log(0)``.

    ``backward(dout=1)`` returns ``dout * (y - t) / N`` in x's shape: the same
    clean gradient as softmax with cross-entropy.
    """

    def __init__(self) -> None:
        super().__init__()
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, x, t):
        xp = get_array_module(x)
        t = xp.asarray(t)
        if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] != 1):
            raise ValueError(
                f"SigmoidWithLoss: scores must have shape (N,) or (N, 1), got {x.shape}; "
                "for more than two classes use SoftmaxWithLoss"
            )
        if t.shape != x.shape:
            if t.size == x.shape[0]:
                t = t.reshape(x.shape)
            else:
                raise ValueError(
                    f"SigmoidWithLoss: targets must have shape {x.shape}, got {t.shape}"
                )
        if t.size and (float(t.min()) < 0 or float(t.max()) > 1):
            raise ValueError("SigmoidWithLoss: targets must lie in [0, 1] (0 = no, 1 = yes)")
        t = t.astype(x.dtype, copy=False)
        self.t = t
        self.y = sigmoid(x)
        losses = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        self.loss = float(losses.mean())
        return self.loss

    def backward(self, dout=1.0):
        return (self.y - self.t) * (dout / self.y.shape[0])
