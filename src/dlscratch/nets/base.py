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
import warnings
from collections import OrderedDict

import numpy as np

from dlscratch import gradient as _gradient
from dlscratch.backend import (
    aligned_zeros,
    get_array_module,
    resolve_dtype,
    to_numpy,
)
from dlscratch.checks import assign_in_place
from dlscratch.fast import all_finite
from dlscratch.functions import softmax
from dlscratch.layers import (
    Dropout,
    SoftmaxWithLoss,
)
from dlscratch.nets import channels_last, parallel
from dlscratch.registry import Registry

#: Networks a run configuration can name (``dlscratch train --net NAME``). Each entry is a
#: function ``(config, *, rng, input_shape, n_classes) -> Network`` with attributes
#: ``defaults`` (``hidden`` and ``dropout`` when the config leaves them None), and
#: optionally ``fixed`` (settings built into the network, which a config may not change)
#: and ``hidden_layers`` (how many sizes ``hidden`` must give). A module added to
#: ``dlscratch.nets`` registers its network with ``@ARCHITECTURES.register(name)``.
ARCHITECTURES = Registry("network", package="dlscratch.nets")

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


class ParameterDict(FlatDict):
    """A network's ``params``: assigning to an entry writes into the live parameter.

    ``net.params["W1"] = W`` (the book's way of loading weights) copies ``W`` into the
    array the layer computes with, so ``predict``, the optimizer and ``state_dict`` all
    see the new values; the shape must match and the values must be finite real numbers
    (they are cast to the network's dtype). Entries cannot be added or removed: the
    network's architecture decides which parameters exist.
    """

    def __init__(self, entries=(), flat=None, layout=None):
        super().__init__(entries, flat, layout)
        self._sealed = True

    def __setitem__(self, name, value):
        if not getattr(self, "_sealed", False):
            return super().__setitem__(name, value)
        if name not in self:
            raise KeyError(
                f"this network has no parameter {name!r}; its parameters are {', '.join(self)}"
            )
        assign_in_place(self[name], value, f"parameter {name!r}")

    def __delitem__(self, name):
        raise TypeError(f"parameters cannot be removed from a network (tried {name!r})")

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

    #: Rows per forward pass when a whole data set is evaluated (bounds memory).
    eval_batch_size = 1000
    #: Whether, with two threads or more (``--threads``), a batch is split among them,
    #: each part run by a replica of the network (:mod:`dlscratch.nets.parallel`).
    parallel_batches = False

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
        #: The loss (weight decay included) of the latest :meth:`loss` or :meth:`gradient`.
        self.last_loss: float | None = None

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
        if not isinstance(self.params, ParameterDict):  # not packable: mixed dtypes or devices
            self.params = ParameterDict(self.params.items())
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
        self.params = ParameterDict(param_views, flat_params, layout)
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
        if x.size and not integral and not all_finite(x):  # cheap: dlscratch.fast.all_finite
            raise ValueError("input contains NaN or infinity; clean or re-normalise the data")
        return x

    def predict(self, x, train: bool = False):
        """Scores before softmax.  x: (N, D) -> (N, C)."""
        x = self._as_input(x)
        parts = None if train else parallel.parts_for(self, x.shape[0], train=False)
        if parts:  # the batch shared among threads: see dlscratch.nets.parallel
            return parallel.predict(self, self._shape_input(x), parts)
        if not train:  # convolutions channels-last: see dlscratch.nets.channels_last
            return channels_last.forward(self.layers.values(), x)
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
        return self._forward_loss(self._as_input(x), t, train=train)

    def _shape_input(self, x):
        """A validated batch in the shape the first layer takes (a reshape at most; the
        Trainer's fast path calls only this). Identity here; image networks reshape flat rows."""
        return x

    def _forward_loss(self, x, t, train: bool) -> float:
        """The loss of an already validated batch; kept as :attr:`last_loss`."""
        x = self._shape_input(x)
        for layer in self.layers.values():  # every layer's forward: backward may follow
            x = layer.forward(x, train=train)
        self.last_loss = float(self.last_layer.forward(x, t)) + self.weight_decay_loss()
        return self.last_loss

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
    def gradient(self, x, t, *, reuse: bool = False) -> OrderedDict:
        """Gradients of :meth:`loss` (train mode) by backpropagation, keyed like ``params``.

        The forward pass runs in training mode, then every layer's ``backward`` in
        reverse order; the weight-decay term ``lambda * W`` is added to each weight's
        gradient. :attr:`last_loss` holds the loss of this batch afterwards.

        The returned arrays belong to the caller: a later call does not change them.
        ``reuse=True`` is the Trainer's fast path: it skips the input checks (the
        Trainer validated its data once) and returns the network's own gradient
        buffers, which the next call overwrites.
        """
        if not reuse:
            x = self._as_input(x)
        parts = parallel.parts_for(self, x.shape[0], train=True)
        if parts:  # the batch shared among threads: see dlscratch.nets.parallel
            loss = parallel.gradient(self, self._shape_input(x), t, parts)
            self.last_loss = loss + self.weight_decay_loss()
        else:
            self._forward_loss(x, t, train=True)
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
        if reuse:
            return grads
        if grads.flat is not None:  # one copy of the whole buffer, then views into it
            copy = grads.flat.copy()
            return FlatDict(
                ((name, copy[start : start + g.size].reshape(g.shape))
                 for (name, start, _), g in zip(grads.layout, grads.values())),
                copy,
                grads.layout,
            )
        return FlatDict((name, g.copy()) for name, g in grads.items())

    def numerical_gradient(self, x, t, h: float = _gradient.H) -> OrderedDict:
        """Gradients of :meth:`loss` (train mode) by central differences - slow, for checking.

        In float32 the central difference loses most of its digits (``h = 1e-4`` against a
        loss near 1 leaves about 3 significant figures), so agreement with backpropagation
        is around 1e-2, not the book's 1e-10: build the network with ``dtype=np.float64``
        to check gradients (a warning says so).
        """
        if self.dtype == np.float32:
            warnings.warn(
                "numerical_gradient on a float32 network agrees with backpropagation only to "
                "about 1e-2; build it with dtype=np.float64 for the book's ~1e-10",
                stacklevel=2,
            )
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

    def summary(self, input_shape=None) -> str:
        """A table of the layers, their output shapes and parameter counts (also printed)."""
        from dlscratch.summary import summary

        text = summary(self, input_shape)
        print(text)
        return text

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

