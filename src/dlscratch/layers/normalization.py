"""Batch normalization (Ioffe & Szegedy, 2015; section 6.3 of the notes)."""

from __future__ import annotations

from dlscratch.backend import get_array_module
from dlscratch.layers.base import Layer


class BatchNormalization(Layer):
    """Normalise each feature over the batch, then scale and shift.

    Training (``train=True``), for x: (N, D)::

        mu = mean(x, axis=0);  var = mean((x - mu)**2, axis=0)
        x_hat = (x - mu) / sqrt(var + eps)
        y = gamma * x_hat + beta

    and the running statistics move towards the batch's:
    ``running = momentum * running + (1 - momentum) * batch``.
    Inference (``train=False``) normalises with the running statistics instead.

    gamma, beta: (D,).  Inputs with more axes, (N, d1, d2, ...), are flattened
    to (N, D) and restored on output.

    Backward (train mode) in its compact form::

        dx_hat = dout * gamma
        dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)
        dgamma = sum(dout * x_hat),  dbeta = sum(dout)
    """

    def __init__(self, gamma, beta, momentum: float = 0.9, eps: float = 1e-7) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        xp = get_array_module(gamma)
        self.params = {"gamma": gamma, "beta": beta}
        self.grads = {"gamma": None, "beta": None}
        self.buffers = {
            "running_mean": xp.zeros_like(gamma),
            "running_var": xp.ones_like(gamma),
        }
        self.momentum = momentum
        self.eps = eps
        self._x_hat = None
        self._inv_std = None
        self._input_shape = None

    def forward(self, x, *, train: bool = False):
        xp = get_array_module(x)
        self._input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if train:
            if x.shape[0] < 2:
                raise ValueError("batch norm in training needs a batch of at least 2 samples")
            mu = x.mean(axis=0)
            xc = x - mu
            var = (xc * xc).mean(axis=0)
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            x_hat = xc * inv_std
            m = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= m
            rm += (1 - m) * mu
            rv *= m
            rv += (1 - m) * var
            self._x_hat, self._inv_std = x_hat, inv_std
        else:
            inv_std = 1.0 / xp.sqrt(self.buffers["running_var"] + self.eps)
            x_hat = (x - self.buffers["running_mean"]) * inv_std
        out = gamma * x_hat + beta
        return out.reshape(self._input_shape)

    def backward(self, dout):
        if self._x_hat is None:
            raise RuntimeError("BatchNormalization.backward needs a forward pass with train=True")
        dout = dout.reshape(dout.shape[0], -1)
        x_hat = self._x_hat
        self.grads["beta"] = dout.sum(axis=0)
        self.grads["gamma"] = (dout * x_hat).sum(axis=0)
        dx_hat = dout * self.params["gamma"]
        dx = dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0)
        dx *= self._inv_std
        return dx.reshape(self._input_shape)

    def __repr__(self) -> str:
        return f"BatchNormalization({self.params['gamma'].shape[0]})"
