"""Parameter update rules (section 6.1 of the notes).

Every optimizer has ``update(params, grads)``, which changes the arrays in
``params`` *in place* (so a network sharing them sees the change), and keeps
its state keyed by parameter name, so that ``state_dict()`` can be saved and
``load_state_dict()`` resumes training exactly.

Notation: ``W`` a parameter, ``g`` its gradient, ``lr`` the learning rate.
The small constant ``1e-7`` in the adaptive methods keeps the division finite.

How the updates are made fast (the rules themselves are the book's):

* **One pass over the whole network.** ``net.params`` and the dict returned by
  ``net.gradient`` are :class:`~dlscratch.nets.FlatDict` objects: every array is
  a view into one flat buffer. :meth:`Optimizer.update` notices this and applies
  the rule once to the flat buffers (the state arrays - ``m``, ``v``, ... - get
  flat buffers laid out the same way), instead of once per array: Adam on the
  784-100-100-10 network becomes 12 NumPy calls rather than 72. Any other dicts
  are updated array by array with the same code and the same result.
* **No allocation per step.** Each rule is written with ``out=`` and in-place
  operators into one scratch array kept by the optimizer.
* **No subnormal numbers.** Where a gradient stays exactly zero (a dead ReLU, a
  pixel that is always black), ``m`` and ``v`` decay geometrically and, in
  float32, would reach the subnormal range (below 1.2e-38) within about a
  thousand steps; many x86 processors run arithmetic on subnormals tens of
  times slower. NumPy cannot set the processor's flush-to-zero flag, so every
  ``FLUSH_EVERY`` steps float32 state below ``FLUSH_BELOW`` is set to exactly
  zero - far too small to move a weight (``1e-30 * lr / 1e-7``).
* **On a GPU** (CuPy arrays) Adam runs as one fused elementwise kernel.
"""

from __future__ import annotations

import math

import numpy as np

from dlscratch import backend
from dlscratch.backend import get_array_module, to_numpy
from dlscratch.nets import FlatDict
from dlscratch.registry import Option, Registry

#: Optimizers by their command-line names. Each class declares ``default_lr`` (a rate
#: that trains the default MNIST network well) and ``options``, its other hyperparameters;
#: a module added to this package registers itself with ``@OPTIMIZERS.register(name)``.
OPTIMIZERS = Registry("optimizer", package="dlscratch.optim")

EPS = 1e-7

#: Every this many steps, float32 optimizer state smaller than FLUSH_BELOW is set to 0.
FLUSH_EVERY = 100
#: Magnitude below which float32 state is flushed: 100 more steps of decay by 0.9 keep it normal.
FLUSH_BELOW = 1e-30


def _laid_out(arrays, layout) -> bool:
    """Whether ``arrays`` is an intact :class:`~dlscratch.nets.FlatDict` with ``layout``."""
    return isinstance(arrays, FlatDict) and arrays.layout == layout and arrays.is_intact()


def check_grads(params, grads) -> None:
    """Every parameter has a gradient of its own shape, or a ValueError that names it."""
    missing = [name for name in params if name not in grads]
    if missing:
        raise ValueError(
            f"no gradient for parameter(s) {missing}; grads must have the keys of "
            f"params ({list(params)}), got {list(grads)}"
        )
    for name, param in params.items():
        if grads[name].shape != param.shape:
            raise ValueError(
                f"gradient of {name!r} has shape {grads[name].shape}, parameter has {param.shape}"
            )


MOMENTUM = Option(
    "momentum", float, 0.9, "share of the velocity kept each step", low=0.0, high=1.0,
    high_open=True,
)

#: The learning rate, shared by every rule.
LR_OPTION = Option("learning rate", float, None, "step size", low=0.0, low_open=True)


class Optimizer:
    """Base class: hyperparameters, per-parameter state, save and restore.

    Subclasses list their per-parameter state arrays in ``slots`` and implement
    ``_step(param, grad, state)``, which updates ``param`` in place given its
    gradient and ``state`` (slot name -> array of param's shape). ``_step`` is
    called once per array, or once for the whole network with flat arrays; it
    may use ``self._scratch(param)``, a temporary array of param's shape.
    """

    slots: tuple = ()
    #: A learning rate that trains the default MNIST network well with this rule.
    default_lr: float = 0.01
    #: Hyperparameters other than ``lr`` (see :class:`~dlscratch.registry.Option`).
    options: tuple = ()

    def __init__(self, lr: float, **hyperparameters) -> None:
        self.lr = LR_OPTION.validate(lr)
        for option in self.options:
            setattr(self, option.name, option.validate(hyperparameters.pop(option.name)))
        if hyperparameters:
            raise TypeError(f"{type(self).__name__} got unexpected options {list(hyperparameters)}")
        self.state: dict = {slot: {} for slot in self.slots}
        self.t = 0  # number of update() calls so far
        self._scratch_bufs: dict = {}

    def update(self, params, grads) -> None:
        """Apply one step to every parameter in ``params`` (in place).

        params, grads: dicts ``name -> array`` with the same keys and shapes.
        When both are one network's flat dicts (``net.params`` and the result of
        ``net.gradient``), the step runs once over the flat buffers.
        """
        flat = self._is_flat_pair(params, grads)
        if not flat:
            check_grads(params, grads)  # before anything changes, the step count included
        self.t += 1
        self._prepare()
        if flat:
            self._step(params.flat, grads.flat, self._flat_slots(params))
        else:
            for name, param in params.items():
                state = {slot: self._slot(slot, name, param) for slot in self.slots}
                self._step(param, grads[name], state)
        if self.slots and self.t % FLUSH_EVERY == 0:
            self._flush_subnormals()

    def _prepare(self) -> None:
        """Per-step scalars shared by all arrays (Adam's bias correction)."""

    def _step(self, param, grad, state):  # pragma: no cover - interface
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------
    def _slot(self, slot, name, like):
        buf = self.state[slot].get(name)
        if buf is None:
            buf = backend.aligned_zeros(like.shape, like.dtype, get_array_module(like))
            self.state[slot][name] = buf
        return buf

    def _scratch(self, like):
        """A reusable temporary array with the shape, dtype and device of ``like``."""
        key = (like.shape, like.dtype, type(like))
        buf = self._scratch_bufs.get(key)
        if buf is None:
            xp = get_array_module(like)
            buf = self._scratch_bufs[key] = backend.aligned_zeros(like.shape, like.dtype, xp)
        return buf

    @staticmethod
    def _is_flat_pair(params, grads) -> bool:
        layout = getattr(params, "layout", None)
        return layout is not None and _laid_out(params, layout) and _laid_out(grads, layout)

    @property
    def _flat_state(self) -> dict:
        """slot -> the flat buffer behind ``state[slot]``, for the slots kept flat."""
        return {slot: bufs.flat for slot, bufs in self.state.items() if isinstance(bufs, FlatDict)}

    def _flat_slots(self, params) -> dict:
        """The state of every slot as one flat buffer laid out like ``params.flat``.

        ``self.state[slot]`` becomes a :class:`~dlscratch.nets.FlatDict` whose
        arrays have the parameters' shapes - views into that buffer - so
        ``state_dict`` and resuming work as before. The buffers are (re)built,
        keeping the current values, on first use and whenever a slot is no longer
        such an intact FlatDict of this layout (after ``load_state_dict``,
        ``to_device``, a copy or pickle of the optimizer, or for another network).
        """
        layout = params.layout
        if not all(_laid_out(self.state[slot], layout) for slot in self.slots):
            xp = get_array_module(params.flat)
            for slot in self.slots:
                flat = backend.aligned_zeros(params.flat.shape, params.flat.dtype, xp)
                old, views = self.state[slot], []
                for name, start, shape in layout:
                    view = flat[start : start + math.prod(shape)].reshape(shape)
                    if name in old:
                        view[...] = xp.asarray(old[name])
                    views.append((name, view))
                self.state[slot] = FlatDict(views, flat, layout)
        return self._flat_state

    def _flush_subnormals(self) -> None:
        """Set float32 state smaller than FLUSH_BELOW to zero (see the module docstring)."""
        for bufs in self.state.values():
            flat = isinstance(bufs, FlatDict) and bufs.is_intact()
            for a in [bufs.flat] if flat else bufs.values():
                if a.dtype == np.float32:
                    xp = get_array_module(a)
                    xp.copyto(a, 0, where=xp.abs(a) < FLUSH_BELOW)

    def hyperparameters(self) -> dict:
        """The constructor arguments (current values)."""
        return {"lr": self.lr, **{o.name: getattr(self, o.name) for o in self.options}}

    def state_dict(self) -> dict:
        """``{'type', 'hyperparameters', 't', 'state': {slot: {name: array}}}`` (NumPy copies)."""
        return {
            "type": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "t": self.t,
            "state": {
                slot: {name: to_numpy(a).copy() for name, a in bufs.items()}
                for slot, bufs in self.state.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (hyperparameters included)."""
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"optimizer state is for {state.get('type')!r}, not {type(self).__name__!r}"
            )
        for key, value in state["hyperparameters"].items():
            setattr(self, key, value)
        self.t = int(state["t"])
        self.state = {slot: {} for slot in self.slots}
        for slot, bufs in state["state"].items():
            if slot not in self.state:
                raise ValueError(f"unknown state slot {slot!r} for {type(self).__name__}")
            self.state[slot] = {name: a.copy() for name, a in bufs.items()}

    def to_device(self, like) -> None:
        """Move state arrays to the array module of ``like`` (after loading on another device)."""
        xp = get_array_module(like)
        for bufs in self.state.values():
            for name in bufs:
                bufs[name] = xp.asarray(bufs[name])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent: ``W <- W - lr * g``."""

    default_lr = 0.1

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        step = xp.multiply(grad, float(self.lr), out=self._scratch(param))
        param -= step


@OPTIMIZERS.register("momentum")
class Momentum(Optimizer):
    """Momentum SGD: ``v <- momentum * v - lr * g;  W <- W + v``."""

    slots = ("v",)
    options = (MOMENTUM,)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr, momentum=momentum)

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        v = state["v"]
        v *= float(self.momentum)
        v -= xp.multiply(grad, float(self.lr), out=self._scratch(param))
        param += v


@OPTIMIZERS.register("nesterov")
class Nesterov(Momentum):
    """Nesterov's accelerated gradient, written (as in the book) without a look-ahead pass::

        v <- momentum * v - lr * g
        W <- W + momentum^2 * v - (1 + momentum) * lr * g

    The same velocity and options as :class:`Momentum`; only the step differs.
    """

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        v, tmp = state["v"], self._scratch(param)
        m, lr = float(self.momentum), float(self.lr)
        v *= m
        v -= xp.multiply(grad, lr, out=tmp)
        param += xp.multiply(v, m * m, out=tmp)
        param -= xp.multiply(grad, (1 + m) * lr, out=tmp)


@OPTIMIZERS.register("adagrad")
class AdaGrad(Optimizer):
    """AdaGrad: ``h <- h + g*g;  W <- W - lr * g / (sqrt(h) + 1e-7)``."""

    slots = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        h, tmp = state["h"], self._scratch(param)
        h += xp.multiply(grad, grad, out=tmp)
        _scaled_step(xp, param, grad, h, tmp, float(self.lr))


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop: ``h <- rho*h + (1-rho)*g*g;  W <- W - lr * g / (sqrt(h) + 1e-7)``."""

    slots = ("h",)
    default_lr = 0.001
    options = (
        Option(
            "decay_rate", float, 0.99, "share of the squared-gradient average kept each step",
            low=0.0, high=1.0, high_open=True,
        ),
    )

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr, decay_rate=decay_rate)

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        h, tmp = state["h"], self._scratch(param)
        rho = float(self.decay_rate)
        h *= rho
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - rho
        h += tmp
        _scaled_step(xp, param, grad, h, tmp, float(self.lr))


def _scaled_step(xp, param, grad, h, tmp, lr):
    """``param -= lr * grad / (sqrt(h) + 1e-7)``, with ``tmp`` as the only temporary."""
    xp.sqrt(h, out=tmp)
    tmp += EPS
    xp.divide(grad, tmp, out=tmp)
    tmp *= lr
    param -= tmp


#: Adam in one CUDA kernel (CuPy): each thread updates one element.
_ADAM_KERNEL = (
    "T grad, T lr_t, T one_minus_beta1, T one_minus_beta2, T eps",
    "T param, T m, T v",
    """
    m += one_minus_beta1 * (grad - m);
    v += one_minus_beta2 * (grad * grad - v);
    param -= lr_t * m / (sqrt(v) + eps);
    """,
    "dlscratch_adam",
)


#: Adam's moment decay rates (AdamW shares them).
BETAS = (
    Option("beta1", float, 0.9, "decay of the gradient average", low=0.0, high=1.0, high_open=True),
    Option(
        "beta2", float, 0.999, "decay of the squared-gradient average",
        low=0.0, high=1.0, high_open=True,
    ),
)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with the bias correction folded into the step size::

        m <- m + (1 - beta1) * (g - m)          (= beta1*m + (1-beta1)*g)
        v <- v + (1 - beta2) * (g*g - v)
        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        W <- W - lr_t * m / (sqrt(v) + 1e-7)
    """

    slots = ("m", "v")
    default_lr = 0.001
    options = BETAS

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr, beta1=beta1, beta2=beta2)

    def _prepare(self) -> None:
        t, b1, b2 = self.t, float(self.beta1), float(self.beta2)
        self._lr_t = float(self.lr) * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)

    def _step(self, param, grad, state):
        xp = get_array_module(param)
        m, v = state["m"], state["v"]
        one_minus_b1, one_minus_b2 = 1.0 - float(self.beta1), 1.0 - float(self.beta2)
        if xp is not np and grad.dtype == param.dtype:
            kernel = backend.elementwise_kernel(*_ADAM_KERNEL)
            to = param.dtype.type
            kernel(grad, to(self._lr_t), to(one_minus_b1), to(one_minus_b2), to(EPS), param, m, v)
            return
        tmp = self._scratch(param)
        # m += (1 - beta1) * (g - m)
        xp.subtract(grad, m, out=tmp)
        tmp *= one_minus_b1
        m += tmp
        # v += (1 - beta2) * (g*g - v)
        xp.multiply(grad, grad, out=tmp)
        tmp -= v
        tmp *= one_minus_b2
        v += tmp
        # W -= lr_t * m / (sqrt(v) + eps)
        xp.sqrt(v, out=tmp)
        tmp += EPS
        xp.divide(m, tmp, out=tmp)
        tmp *= self._lr_t
        param -= tmp


def get_optimizer(name: str, **kwargs) -> Optimizer:
    """Build a registered optimizer by name (see :data:`OPTIMIZERS`), options validated."""
    lr = kwargs.pop("lr", None)
    cls = OPTIMIZERS.get_class(name)
    options = OPTIMIZERS.check_options(name, kwargs)
    return cls(lr=cls.default_lr if lr is None else lr, **options)
