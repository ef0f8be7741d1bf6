"""The networks of the notes: SimpleNet, TwoLayerNet and MultiLayerNet.

All layered networks share one small base, :class:`Network`: an ordered dict of
layers ending in a loss layer, and ``params``, an ordered dict of the layers'
parameter arrays under the book's names (``W1``, ``b1``, ``gamma1``, ...).
``params`` holds the very arrays the layers use, so an optimizer that updates
``params`` in place updates the network.

For speed, those arrays are views into one contiguous buffer per network
(``flat_params``), and the layers write their gradients into a second one
(``flat_grads``): an optimizer then updates every parameter with a handful of
vectorised operations over two long arrays instead of a handful per array
(see :class:`FlatDict` and :mod:`dlscratch.optim`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import operator
from collections import OrderedDict

import numpy as np

from dlscratch import gradient as _gradient
from dlscratch.backend import (
    aligned_zeros,
    get_array_module,
    resolve_dtype,
    to_device,
    to_numpy,
)
from dlscratch.functions import softmax, softmax_cross_entropy
from dlscratch.init import init_std
from dlscratch.layers import (
    ACTIVATIONS,
    Affine,
    BatchNormalization,
    Dropout,
    SoftmaxWithLoss,
)
from dlscratch.layers.base import _ones

#: Parameter-name prefixes that weight decay applies to (weights, not biases or BN).
_DECAYED_PREFIX = "W"

#: Each array in a flat buffer starts on a multiple of this many elements (64 bytes in
#: float32; the buffer itself starts on a cache line), so that every matrix is aligned.
_ALIGN = 16


class FlatDict(OrderedDict):
    """Named arrays that are views into one contiguous 1-D buffer, ``flat``.

    ``net.params`` and the dicts that ``net.gradient`` returns are FlatDicts:
    ``params["W1"]`` is an ordinary (784, 100) array, but its memory is a slice
    of ``params.flat``. An optimizer handed a params and a grads FlatDict with
    the same ``layout`` updates the whole network at once by working on the two
    flat buffers; with any other dicts it updates array by array, with the same
    result.

    ``layout`` is the tuple of ``(name, start, shape)`` in buffer order: entry
    ``name`` is ``flat[start:start + size].reshape(shape)``. Replacing an entry
    (``params["W1"] = other``) cuts it loose from the buffer; :meth:`is_intact`
    then returns False and optimizers take the per-array path, so nothing goes
    silently wrong. Copies and pickles are plain ``OrderedDict``s of
    independent arrays (a copied network packs itself again).
    """

    def __init__(self, entries=(), flat=None, layout=None):
        super().__init__(entries)
        self.flat = flat
        self.layout = layout
        self._names = tuple(self.keys())
        self._views = tuple(self.values())

    def is_intact(self) -> bool:
        """Whether every entry is still the view into ``flat`` it was built with."""
        return (
            self.flat is not None
            and len(self) == len(self._views)
            and all(map(operator.is_, map(self.get, self._names), self._views))
        )

    def __reduce__(self):
        return (OrderedDict, (list(self.items()),))


class Network:
    """Base of the layered networks.

    Subclasses build ``self.layers`` (ordered ``name -> Layer``) and
    ``self.last_layer`` (a loss layer), then call :meth:`_collect_params`.

    Attributes
    ----------
    params : OrderedDict[str, ndarray]
        Learnable arrays by name, in layer order.
    dtype : numpy dtype
        float32 (default, fast) or float64 (for gradient checks).
    weight_decay_lambda : float
        L2 penalty ``0.5 * lambda * sum(W**2)`` added to the loss for every weight matrix.
    """

    def __init__(self, dtype=np.float32, weight_decay_lambda: float = 0.0) -> None:
        self.dtype = resolve_dtype(dtype)
        if not (isinstance(weight_decay_lambda, numbers.Real) and weight_decay_lambda >= 0):
            raise ValueError(f"weight_decay_lambda must be >= 0, got {weight_decay_lambda!r}")
        self.weight_decay_lambda = float(weight_decay_lambda)
        self.layers: OrderedDict = OrderedDict()
        self.last_layer = SoftmaxWithLoss()
        self.params: OrderedDict = OrderedDict()
        self._grads: FlatDict | None = None  # views into flat_grads, keyed like params
        self._param_owner: dict = {}  # "W1" -> (layer, "W")
        self._buffer_owner: dict = {}  # "running_mean1" -> (layer, "running_mean")
        self.input_size: int | None = None

    # -- construction --------------------------------------------------------------
    def _collect_params(self) -> None:
        """Register every layer's params and buffers under numbered names (W1, gamma2, ...).

        Then move the parameters into one flat buffer (:meth:`_pack_params`) and
        tell the first layer that its input, the data, needs no gradient.
        """
        self.params = OrderedDict()
        self._grads = None
        self._param_owner.clear()
        self._buffer_owner.clear()
        for layer_name, layer in self.layers.items():
            index = "".join(ch for ch in layer_name if ch.isdigit())
            for key, value in layer.params.items():
                name = f"{key}{index}"
                self.params[name] = value
                self._param_owner[name] = (layer, key)
            for key in layer.buffers:
                self._buffer_owner[f"{key}{index}"] = (layer, key)
        self._pack_params()
        if self.layers:
            next(iter(self.layers.values())).input_grad = False

    def _pack_params(self) -> None:
        """Copy the parameters into one flat buffer and make the layers use views of it.

        After this, ``layer.params["W"]`` is a view into :attr:`flat_params`, and
        ``layer.grad_out["W"]`` a view into :attr:`flat_grads` that the layer's
        backward writes into. Arrays of mixed dtypes or devices are left as they are.
        """
        arrays = list(self.params.values())
        if not arrays:
            return
        xp = get_array_module(arrays[0])
        if any(a.dtype != self.dtype or get_array_module(a) is not xp for a in arrays):
            return
        offsets, total = [], 0
        for a in arrays:
            offsets.append(total)
            total += -(-a.size // _ALIGN) * _ALIGN  # round up: the next array starts aligned
        flat_params = aligned_zeros(total, self.dtype, xp)
        flat_grads = aligned_zeros(total, self.dtype, xp)
        param_views, grad_views = [], []
        for (name, (layer, key)), a, start in zip(self._param_owner.items(), arrays, offsets):
            p = flat_params[start : start + a.size].reshape(a.shape)
            p[...] = a
            g = flat_grads[start : start + a.size].reshape(a.shape)
            layer.params[key] = p
            layer.grad_out[key] = g
            param_views.append((name, p))
            grad_views.append((name, g))
        layout = tuple((name, start, a.shape) for (name, a), start in zip(param_views, offsets))
        self.params = FlatDict(param_views, flat_params, layout)
        self._grads = FlatDict(grad_views, flat_grads, layout)

    @property
    def flat_params(self):
        """All parameters in one 1-D array (``params`` holds views into it), or None."""
        return getattr(self.params, "flat", None)

    @property
    def flat_grads(self):
        """All gradients in one 1-D array, filled by :meth:`gradient`, or None."""
        return None if self._grads is None else self._grads.flat

    # -- forward -------------------------------------------------------------------
    def _as_input(self, x):
        """Validate ``x`` (N, D) or (N, ...) and cast it to the network's dtype."""
        xp = get_array_module(x)
        x = xp.asarray(x)
        if x.ndim < 2:
            raise ValueError(
                f"input must be a batch of shape (N, {self.input_size}), got shape {x.shape}; "
                "for a single sample use x[None, :]"
            )
        features = math.prod(x.shape[1:])
        if self.input_size is not None and features != self.input_size:
            raise ValueError(
                f"this network expects {self.input_size} input features per sample, "
                f"got {features} (input shape {x.shape})"
            )
        integral = x.dtype.kind in "biu"  # bool and integers are finite by construction
        if x.dtype != self.dtype:
            if not (integral or x.dtype.kind == "f"):
                raise TypeError(f"input must be numeric, got dtype {x.dtype}")
            x = x.astype(self.dtype)
        if x.size and not integral and not _all_finite(x):
            raise ValueError("input contains NaN or infinity; clean or re-normalise the data")
        return x

    def predict(self, x, train: bool = False):
        """Scores before softmax.  x: (N, D) -> (N, C)."""
        x = self._as_input(x)
        for layer in self.layers.values():
            x = layer.forward(x, train=train)
        return x

    def predict_proba(self, x):
        """Class probabilities (softmax of the scores).  x: (N, D) -> (N, C)."""
        return softmax(self.predict(x))

    def weight_decay_loss(self) -> float:
        """``0.5 * lambda * sum ||W||^2`` over the weight matrices (0 when lambda is 0)."""
        if not self.weight_decay_lambda:
            return 0.0
        total = sum(float((W * W).sum()) for name, W in self.params.items() if _decayed(name))
        return 0.5 * self.weight_decay_lambda * total

    def loss(self, x, t, train: bool = False) -> float:
        """Mean cross-entropy over the batch plus the weight-decay penalty.

        x: (N, D); t: integer labels (N,) or one-hot (N, C).
        """
        y = self.predict(x, train=train)
        return self.last_layer.forward(y, t) + self.weight_decay_loss()

    def accuracy(self, x, t, batch_size: int | None = 1000) -> float:
        """Fraction of samples whose arg-max score matches the label.

        Evaluated in chunks of ``batch_size`` to bound memory (None: all at once).
        """
        xp = get_array_module(x)
        t = xp.asarray(t)
        if t.ndim != 1:
            t = t.argmax(axis=1)
        n = x.shape[0]
        if t.shape[0] != n:
            raise ValueError(f"x has {n} samples but t has {t.shape[0]} labels")
        if n == 0:
            raise ValueError("accuracy of an empty set is undefined")
        step = n if batch_size is None else int(batch_size)
        correct = 0
        for start in range(0, n, step):
            y = self.predict(x[start : start + step])
            correct += int((y.argmax(axis=1) == t[start : start + step]).sum())
        return correct / n

    # -- gradients -----------------------------------------------------------------
    def gradient(self, x, t) -> OrderedDict:
        """Gradients of :meth:`loss` (train mode) by backpropagation, keyed like ``params``.

        The arrays are views into :attr:`flat_grads`, reused by every call: the
        next ``gradient`` overwrites them. Copy what you want to keep
        (``{name: g.copy() for name, g in grads.items()}``).
        """
        self.loss(x, t, train=True)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        flat = self._grads
        grads = FlatDict() if flat is None else FlatDict(flat.items(), flat.flat, flat.layout)
        lam = self.weight_decay_lambda
        for name, (layer, key) in self._param_owner.items():
            g = layer.grads[key]
            if flat is not None and g is not grads[name]:
                grads[name][...] = g  # a layer that ignored grad_out: copy into the buffer
                g = grads[name]
            if lam and _decayed(name):
                g += lam * layer.params[key]  # in place, so it stays in the flat buffer
            grads[name] = g
        return grads

    def numerical_gradient(self, x, t, h: float = _gradient.H) -> OrderedDict:
        """Gradients of :meth:`loss` (train mode) by central differences - slow, for checking."""
        x = self._as_input(x)

        def loss_of(_):
            return self.loss(x, t, train=True)

        return OrderedDict(
            (name, _gradient.numerical_gradient(loss_of, p, h=h)) for name, p in self.params.items()
        )

    @contextlib.contextmanager
    def frozen_state(self):
        """Freeze dropout masks and restore batch-norm running statistics on exit.

        Inside the block, repeated forward passes see the same network, as
        numerical gradient checks require.
        """
        dropouts = [layer for layer in self.layers.values() if isinstance(layer, Dropout)]
        owners = self._buffer_owner.items()
        saved = {name: layer.buffers[key].copy() for name, (layer, key) in owners}
        for layer in dropouts:
            layer.frozen, layer.mask = True, None
        try:
            yield self
        finally:
            for layer in dropouts:
                layer.frozen = False
            for name, (layer, key) in self._buffer_owner.items():
                layer.buffers[key][...] = saved[name]

    # -- state ---------------------------------------------------------------------
    def random_state(self) -> dict:
        """The generator states of the layers that draw random numbers (dropout), by layer name.

        JSON-serialisable; save it beside :meth:`state_dict` to resume training exactly.
        """
        return {
            name: layer.rng.bit_generator.state
            for name, layer in self.layers.items()
            if isinstance(layer, Dropout)
        }

    def set_random_state(self, states: dict) -> None:
        """Restore what :meth:`random_state` returned."""
        for name, state in states.items():
            layer = self.layers.get(name)
            if not isinstance(layer, Dropout):
                raise ValueError(f"random state for {name!r}, which is not a dropout layer here")
            layer.rng.bit_generator.state = state

    def state_dict(self) -> OrderedDict:
        """Copies of every parameter and buffer (running statistics), as NumPy arrays."""
        state = OrderedDict((name, to_numpy(p).copy()) for name, p in self.params.items())
        for name, (layer, key) in self._buffer_owner.items():
            state[name] = to_numpy(layer.buffers[key]).copy()
        return state

    def load_state_dict(self, state) -> None:
        """Copy arrays from ``state`` into the network in place (shapes must match)."""
        expected = list(self.params) + list(self._buffer_owner)
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ValueError(
                f"state does not fit this network: missing {missing}, unexpected {unexpected}"
            )
        targets = {name: self.params[name] for name in self.params}
        targets.update({n: layer.buffers[k] for n, (layer, k) in self._buffer_owner.items()})
        for name, target in targets.items():
            value = np.asarray(to_numpy(state[name]))
            if value.shape != target.shape:
                raise ValueError(
                    f"parameter {name!r}: expected shape {target.shape}, found {value.shape}"
                )
            xp = get_array_module(target)
            target[...] = xp.asarray(value, dtype=target.dtype)

    def get_config(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def __setstate__(self, state) -> None:
        # copy.deepcopy and pickle give independent arrays: pack them into new flat buffers.
        self.__dict__.update(state)
        if not (isinstance(self.params, FlatDict) and self.params.is_intact()):
            self._collect_params()

    def __repr__(self) -> str:
        inner = ",\n  ".join(f"{name}: {layer!r}" for name, layer in self.layers.items())
        return f"{type(self).__name__}(\n  {inner},\n  loss: {self.last_layer!r}\n)"


def _decayed(name: str) -> bool:
    return name.startswith(_DECAYED_PREFIX)


def _all_finite(x) -> bool:
    """Whether ``x`` (N, ...) holds no NaN or infinity - cheaply.

    One matrix-vector product forms the row sums (a NaN or an infinity makes
    its row's sum non-finite), which costs a fraction of a full
    ``isfinite(x).all()``; only when a sum is not finite (which huge finite
    values can also cause) is the exact test run.
    """
    xp = get_array_module(x)
    rows = x.reshape(x.shape[0], -1)
    sums = rows @ _ones(rows.shape[1], rows.dtype, xp)
    if math.isfinite(float(sums.sum())):
        return True
    return bool(xp.isfinite(x).all())


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
    activation : 'relu' | 'sigmoid' | 'tanh'
    weight_init_std : 'he' | 'xavier' | float
        'he' (``sqrt(2/n)``), 'xavier' (``1/sqrt(n)``) or a fixed standard deviation.
    weight_decay_lambda : float
        L2 penalty strength (0: none).
    use_batchnorm, use_dropout, dropout_ratio
        Batch normalization after each hidden Affine; dropout after each activation.
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
    ) -> None:
        super().__init__(dtype=dtype, weight_decay_lambda=weight_decay_lambda)
        sizes = _check_sizes(input_size, hidden_size_list, output_size)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}"
            )
        if batchnorm_position not in ("before", "after"):
            raise ValueError(
                f"batchnorm_position must be 'before' or 'after' the activation, "
                f"got {batchnorm_position!r}"
            )
        if use_dropout and not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio}")
        init_std(weight_init_std, 1)  # validates the name or value early
        rng = np.random.default_rng(rng)
        self.input_size = sizes[0]
        self.hidden_size_list = list(sizes[1:-1])
        self.output_size = sizes[-1]
        self.activation = activation
        self.weight_init_std = weight_init_std
        self.use_batchnorm = bool(use_batchnorm)
        self.batchnorm_position = batchnorm_position
        self.use_dropout = bool(use_dropout)
        self.dropout_ratio = float(dropout_ratio)
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
            self.layers[f"Activation{i}"] = ACTIVATIONS[activation]()
            if batchnorm is not None and batchnorm_position == "after":
                self.layers[f"BatchNorm{i}"] = batchnorm
            if self.use_dropout:
                self.layers[f"Dropout{i}"] = Dropout(dropout_ratio, rng=rng.spawn(1)[0])
        self._collect_params()

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this architecture (see :func:`build_network`)."""
        return {
            "class": type(self).__name__,
            "input_size": self.input_size,
            "hidden_size_list": list(self.hidden_size_list),
            "output_size": self.output_size,
            "activation": self.activation,
            "weight_init_std": self.weight_init_std,
            "weight_decay_lambda": self.weight_decay_lambda,
            "use_batchnorm": self.use_batchnorm,
            "batchnorm_position": self.batchnorm_position,
            "use_dropout": self.use_dropout,
            "dropout_ratio": self.dropout_ratio,
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


NETWORKS = {"MultiLayerNet": MultiLayerNet, "TwoLayerNet": TwoLayerNet}


def build_network(config: dict, **overrides) -> Network:
    """Rebuild a network from :meth:`Network.get_config` (weights freshly initialised)."""
    config = dict(config)
    cls_name = config.pop("class", "MultiLayerNet")
    if cls_name not in NETWORKS:
        raise ValueError(f"unknown network class {cls_name!r}: expected one of {list(NETWORKS)}")
    config.update(overrides)
    return NETWORKS[cls_name](**config)


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
