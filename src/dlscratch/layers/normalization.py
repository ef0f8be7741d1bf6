"""Batch normalization (Ioffe & Szegedy, 2015; section 6.3 of the notes)."""

from __future__ import annotations

from dlscratch import fast
from dlscratch.backend import get_array_module
from dlscratch.layers.aliases import grad_alias, param_alias
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

    and, since ``gamma`` is constant over the batch, ``mean(dx_hat) = gamma * dbeta / N``
    and ``mean(dx_hat * x_hat) = gamma * dgamma / N``, so the code computes::

        dx = gamma / sqrt(var + eps) * (dout - dbeta / N - x_hat * dgamma / N)

    reusing the two sums it needs for the parameter gradients anyway.

    Book aliases: ``.gamma``, ``.beta`` (assignment copies in place), ``.dgamma``,
    ``.dbeta``, ``.running_mean``, ``.running_var``.
    """

    gamma = param_alias("gamma")
    beta = param_alias("beta")
    dgamma = grad_alias("gamma")
    dbeta = grad_alias("beta")
    running_mean = property(lambda self: self.buffers["running_mean"], doc="running mean (D,)")
    running_var = property(lambda self: self.buffers["running_var"], doc="running variance (D,)")

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
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if train:
            if x.shape[0] < 2:
                raise ValueError("batch norm in training needs a batch of at least 2 samples")
            n = x.shape[0]
            mu = fast.sum_over_batch(x)
            mu /= n
            xc = x - mu
            out = xc * xc  # squared deviations now; the output buffer below
            var = fast.sum_over_batch(out)
            var /= n
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            x_hat = xc
            x_hat *= inv_std
            m = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= m
            rm += (1 - m) * mu
            rv *= m
            rv += (1 - m) * var
            self._x_hat, self._inv_std = x_hat, inv_std
            xp.multiply(x_hat, gamma, out=out)
        else:
            inv_std = 1.0 / xp.sqrt(self.buffers["running_var"] + self.eps)
            out = x - self.buffers["running_mean"]
            out *= inv_std * gamma
        out += beta
        return out.reshape(self._input_shape)

    def backward(self, dout):
        if self._x_hat is None:
            raise RuntimeError("BatchNormalization.backward needs a forward pass with train=True")
        xp = get_array_module(dout)
        dout = dout.reshape(dout.shape[0], -1)
        x_hat = self._x_hat
        n = dout.shape[0]
        dbeta = fast.sum_over_batch(dout, out=self.grad_out.get("beta"))
        dx = dout * x_hat
        dgamma = fast.sum_over_batch(dx, out=self.grad_out.get("gamma"))
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        # dx = gamma * inv_std * (dout - dbeta / N - x_hat * dgamma / N), in the one buffer
        xp.multiply(x_hat, dgamma / n, out=dx)
        xp.subtract(dout, dx, out=dx)
        dx -= dbeta / n
        dx *= self.params["gamma"] * self._inv_std
        return dx.reshape(self._input_shape)

    def __repr__(self) -> str:
        return f"BatchNormalization({self.params['gamma'].shape[0]})"
