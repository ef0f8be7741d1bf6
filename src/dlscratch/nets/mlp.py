"""The fully connected networks of the notes: MultiLayerNet, TwoLayerNet and SimpleNet."""

from __future__ import annotations

import numbers
from collections import OrderedDict

import numpy as np

from dlscratch import gradient as _gradient
from dlscratch.backend import to_device
from dlscratch.functions import softmax_cross_entropy
from dlscratch.init import init_std
from dlscratch.layers import ACTIVATIONS, Affine, BatchNormalization, Dropout, SoftmaxWithLoss
from dlscratch.nets.base import ARCHITECTURES, Network


class MultiLayerNet(Network):
    """A fully connected network of any depth (chapters 5-6).

    ``Affine -> [BatchNorm] -> activation -> [Dropout]`` for each hidden
    layer, then ``Affine -> SoftmaxWithLoss``. (With
    ``batchnorm_position='after'`` batch norm follows the activation instead.)

    Parameters
    ----------
    input_size : int
        Features per sample (784 for MNIST).
    hidden_size_list : list of int
        Neurons per hidden layer, e.g. ``[100, 100, 100]``.
    output_size : int
        Number of classes.
    activation : str
        A name registered in :data:`dlscratch.layers.ACTIVATIONS` ('relu', 'sigmoid',
        'tanh', 'leaky_relu', ...).
    activation_options : dict, optional
        Options of that activation, e.g. ``{"alpha": 0.1}`` for 'leaky_relu'.
    weight_init_std : 'he' | 'xavier' | float
        'he' (``sqrt(2/n)``), 'xavier' (``1/sqrt(n)``) or a fixed standard deviation.
    weight_decay_lambda : float
        L2 penalty strength (0: none).
    use_batchnorm, use_dropout, dropout_ratio
        Batch normalization after each hidden Affine; dropout after each activation.
        ``dropout_ration`` (the book's spelling) is accepted as well.
    dropout_scale : 'inverted' | 'book'
        Where dropout rescales: 'inverted' (default) divides the kept activations by
        ``1 - ratio`` while training; 'book' multiplies by ``1 - ratio`` at test time, as
        the book's code does. They agree at test time but train differently with plain SGD
        (see :class:`~dlscratch.layers.Dropout`).
    batchnorm_position : 'before' | 'after'
        Where batch norm sits relative to the activation: 'before' (default, as
        the book draws it) or 'after' (the book mentions both are used).
    dtype : float32 (default) or float64.
    rng : numpy Generator or int seed (weights and dropout masks).
    device : 'cpu' or 'cuda' (CuPy).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size_list,
        output_size: int,
        activation: str = "relu",
        weight_init_std="he",
        weight_decay_lambda: float = 0.0,
        use_batchnorm: bool = False,
        use_dropout: bool = False,
        dropout_ratio: float = 0.5,
        dtype=np.float32,
        rng=None,
        device: str = "cpu",
        batchnorm_position: str = "before",
        activation_options: dict | None = None,
        dropout_ration: float | None = None,
        dropout_scale: str = "inverted",
    ) -> None:
        super().__init__(dtype=dtype, weight_decay_lambda=weight_decay_lambda)
        sizes = _check_sizes(input_size, hidden_size_list, output_size)
        if dropout_ration is not None:  # the book's spelling
            dropout_ratio = dropout_ration
        activation_options = ACTIVATIONS.check_options(activation, activation_options)
        if batchnorm_position not in ("before", "after"):
            raise ValueError(
                f"batchnorm_position must be 'before' or 'after' the activation, "
                f"got {batchnorm_position!r}"
            )
        if use_dropout and not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio}")
        if dropout_scale not in Dropout.SCALES:
            raise ValueError(
                f"dropout_scale must be one of {', '.join(Dropout.SCALES)}, got {dropout_scale!r}"
            )
        init_std(weight_init_std, 1)  # validates the name or value early
        rng = np.random.default_rng(rng)
        self.input_size = sizes[0]
        self.hidden_size_list = list(sizes[1:-1])
        self.output_size = sizes[-1]
        self.activation = activation
        self.activation_options = activation_options
        self.weight_init_std = weight_init_std
        self.use_batchnorm = bool(use_batchnorm)
        self.batchnorm_position = batchnorm_position
        self.use_dropout = bool(use_dropout)
        self.dropout_ratio = float(dropout_ratio)
        self.dropout_scale = dropout_scale
        self.device = device

        def arr(a):
            return to_device(np.asarray(a, dtype=self.dtype), device)

        n_affine = len(sizes) - 1
        for i in range(1, n_affine + 1):
            fan_in, fan_out = sizes[i - 1], sizes[i]
            std = init_std(weight_init_std, fan_in)
            W = arr(std * rng.standard_normal((fan_in, fan_out)))
            self.layers[f"Affine{i}"] = Affine(W, arr(np.zeros(fan_out)))
            if i == n_affine:
                break
            batchnorm = (
                BatchNormalization(arr(np.ones(fan_out)), arr(np.zeros(fan_out)))
                if self.use_batchnorm
                else None
            )
            if batchnorm is not None and batchnorm_position == "before":
                self.layers[f"BatchNorm{i}"] = batchnorm
            self.layers[f"Activation{i}"] = ACTIVATIONS.create(activation, **activation_options)
            if batchnorm is not None and batchnorm_position == "after":
                self.layers[f"BatchNorm{i}"] = batchnorm
            if self.use_dropout:
                self.layers[f"Dropout{i}"] = Dropout(
                    dropout_ratio, rng=rng.spawn(1)[0], scale=dropout_scale
                )
        self._collect_params()

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this architecture (see :func:`build_network`)."""
        return {
            "class": type(self).__name__,
            "input_size": self.input_size,
            "hidden_size_list": list(self.hidden_size_list),
            "output_size": self.output_size,
            "activation": self.activation,
            "activation_options": dict(self.activation_options),
            "weight_init_std": self.weight_init_std,
            "weight_decay_lambda": self.weight_decay_lambda,
            "use_batchnorm": self.use_batchnorm,
            "batchnorm_position": self.batchnorm_position,
            "use_dropout": self.use_dropout,
            "dropout_ratio": self.dropout_ratio,
            "dropout_scale": self.dropout_scale,
            "dtype": self.dtype.name,
        }


class TwoLayerNet(MultiLayerNet):
    """The two-layer network of chapters 4-5: ``Affine -> activation -> Affine -> softmax``.

    ``W1: (input_size, hidden_size)``, ``W2: (hidden_size, output_size)``, drawn
    from ``N(0, weight_init_std^2)``; biases start at zero. The activation is the
    sigmoid, as in chapter 4 (chapter 5 swaps in ``activation='relu'``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        weight_init_std=0.01,
        activation: str = "sigmoid",
        dtype=np.float32,
        rng=None,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            input_size,
            [hidden_size],
            output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            dtype=dtype,
            rng=rng,
            device=device,
        )

    def get_config(self) -> dict:
        return {
            "class": "TwoLayerNet",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size_list[0],
            "output_size": self.output_size,
            "weight_init_std": self.weight_init_std,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }


def _check_sizes(input_size, hidden_size_list, output_size) -> list:
    if isinstance(hidden_size_list, numbers.Integral):
        hidden_size_list = [hidden_size_list]
    sizes = [input_size, *hidden_size_list, output_size]
    for s in sizes:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1:
            raise ValueError(
                f"layer sizes must be positive integers, got {sizes} "
                "(input_size, *hidden_size_list, output_size)"
            )
    return [int(s) for s in sizes]


class SimpleNet:
    """The single-layer network of section 4.4.2: a 2x3 weight matrix, no bias.

    ``predict(x) = x @ W``; ``loss`` is softmax cross-entropy.
    W is drawn from a standard normal with ``rng`` (a Generator or seed).
    """

    def __init__(self, rng=None, dtype=np.float64, W=None) -> None:
        rng = np.random.default_rng(rng)
        self.W = (
            np.array(W, dtype=dtype)
            if W is not None
            else rng.standard_normal((2, 3)).astype(dtype)
        )
        if self.W.shape != (2, 3):
            raise ValueError(f"SimpleNet's W must have shape (2, 3), got {self.W.shape}")
        self.params = OrderedDict(W=self.W)

    def predict(self, x):
        """x: (2,) or (N, 2) -> scores (3,) or (N, 3)."""
        return np.asarray(x) @ self.W

    def loss(self, x, t) -> float:
        """Cross-entropy of ``softmax(x @ W)`` against label(s) ``t``."""
        z = np.atleast_2d(self.predict(x))
        t = np.asarray(t)
        if t.ndim == 0 or (t.ndim == 1 and z.shape[0] == 1 and t.size == z.shape[1]):
            t = t.reshape(1, -1) if t.ndim == 1 else t.reshape(1)
        return softmax_cross_entropy(z, t)[0]

    def numerical_gradient(self, x, t) -> OrderedDict:
        return OrderedDict(W=_gradient.numerical_gradient(lambda _: self.loss(x, t), self.W))

    def gradient(self, x, t) -> OrderedDict:
        """Analytic gradient ``x.T @ (softmax(xW) - t) / N``."""
        x2 = np.atleast_2d(np.asarray(x, dtype=self.W.dtype))
        z = x2 @ self.W
        t = np.asarray(t)
        if t.ndim == 1 and x2.shape[0] == 1 and t.size == z.shape[1]:
            t = t.reshape(1, -1)
        elif t.ndim == 0:
            t = t.reshape(1)
        layer = SoftmaxWithLoss()
        layer.forward(z, t)
        return OrderedDict(W=x2.T @ layer.backward(1.0))

    def __repr__(self) -> str:
        return "SimpleNet(W: (2, 3))"


@ARCHITECTURES.register("mlp")
def mlp(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> MultiLayerNet:
    """The fully connected network of chapters 5-6 (``hidden``, ``activation``, ...)."""
    import math

    dropout = cfg.dropout_ratio
    return MultiLayerNet(
        math.prod(input_shape),
        list(cfg.hidden_sizes),
        n_classes,
        activation=cfg.activation,
        activation_options=cfg.activation_options,
        weight_init_std=cfg.weight_init,
        weight_decay_lambda=cfg.weight_decay,
        use_batchnorm=cfg.batchnorm,
        use_dropout=dropout > 0,
        dropout_ratio=dropout if dropout > 0 else 0.5,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
    )


mlp.defaults = {"hidden": (100, 100), "dropout": 0.0, "init": None}  # None: the activation's
