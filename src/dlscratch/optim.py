"""Parameter update rules (section 6.1 of the notes).

Every optimizer has ``update(params, grads)``, which changes the arrays in
``params`` *in place* (so a network sharing them sees the change), and keeps
its state keyed by parameter name, so that ``state_dict()`` can be saved and
``load_state_dict()`` resumes training exactly.

Notation: ``W`` a parameter, ``g`` its gradient, ``lr`` the learning rate.
The small constant ``1e-7`` in the adaptive methods keeps the division finite.
"""

from __future__ import annotations

import math
import numbers

from dlscratch.backend import get_array_module, to_numpy

EPS = 1e-7


def _check_range(name, value, low=0.0, high=None, low_inclusive=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value >= low if low_inclusive else value > low
        if ok and high is not None:
            ok = value < high
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high else "")
        raise ValueError(f"Invalid {name}: {value!r} (must be a number {bound})")
    return float(value)


class Optimizer:
    """Base class: hyperparameters, per-parameter state, save and restore.

    Subclasses list their per-parameter state arrays in ``slots`` and
    implement ``_update_one(name, param, grad)``.
    """

    slots: tuple = ()

    def __init__(self, lr: float) -> None:
        self.lr = _check_range("learning rate", lr)
        self.state: dict = {slot: {} for slot in self.slots}
        self.t = 0  # number of update() calls so far

    def update(self, params, grads) -> None:
        """Apply one step to every parameter in ``params`` (in place)."""
        self.t += 1
        for name, param in params.items():
            grad = grads[name]
            if grad.shape != param.shape:
                raise ValueError(
                    f"gradient of {name!r} has shape {grad.shape}, parameter has {param.shape}"
                )
            self._update_one(name, param, grad)

    def _slot(self, slot, name, like):
        buf = self.state[slot].get(name)
        if buf is None:
            buf = get_array_module(like).zeros_like(like)
            self.state[slot][name] = buf
        return buf

    def _update_one(self, name, param, grad):  # pragma: no cover - interface
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        """The constructor arguments (current values)."""
        return {"lr": self.lr}

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


class SGD(Optimizer):
    """Stochastic gradient descent: ``W <- W - lr * g``."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _update_one(self, name, param, grad):
        param -= self.lr * grad


class Momentum(Optimizer):
    """Momentum SGD: ``v <- momentum * v - lr * g;  W <- W + v``."""

    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0, low_inclusive=True)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update_one(self, name, param, grad):
        v = self._slot("v", name, param)
        v *= self.momentum
        v -= self.lr * grad
        param += v


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient, written (as in the book) without a look-ahead pass::

        v <- momentum * v - lr * g
        W <- W + momentum^2 * v - (1 + momentum) * lr * g
    """

    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0, low_inclusive=True)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update_one(self, name, param, grad):
        v = self._slot("v", name, param)
        m = self.momentum
        v *= m
        v -= self.lr * grad
        param += m * m * v
        param -= (1 + m) * self.lr * grad


class AdaGrad(Optimizer):
    """AdaGrad: ``h <- h + g*g;  W <- W - lr * g / (sqrt(h) + 1e-7)``."""

    slots = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _update_one(self, name, param, grad):
        xp = get_array_module(param)
        h = self._slot("h", name, param)
        h += grad * grad
        param -= self.lr * grad / (xp.sqrt(h) + EPS)


class RMSprop(Optimizer):
    """RMSprop: ``h <- rho*h + (1-rho)*g*g;  W <- W - lr * g / (sqrt(h) + 1e-7)``."""

    slots = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = _check_range("decay_rate", decay_rate, 0.0, 1.0, low_inclusive=True)

    def hyperparameters(self):
        return {"lr": self.lr, "decay_rate": self.decay_rate}

    def _update_one(self, name, param, grad):
        xp = get_array_module(param)
        h = self._slot("h", name, param)
        h *= self.decay_rate
        h += (1 - self.decay_rate) * grad * grad
        param -= self.lr * grad / (xp.sqrt(h) + EPS)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with the bias correction folded into the step size::

        m <- m + (1 - beta1) * (g - m)          (= beta1*m + (1-beta1)*g)
        v <- v + (1 - beta2) * (g*g - v)
        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        W <- W - lr_t * m / (sqrt(v) + 1e-7)
    """

    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        self.beta1 = _check_range("beta1", beta1, 0.0, 1.0, low_inclusive=True)
        self.beta2 = _check_range("beta2", beta2, 0.0, 1.0, low_inclusive=True)

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2}

    def update(self, params, grads) -> None:
        t = self.t + 1
        self._lr_t = self.lr * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        super().update(params, grads)

    def _update_one(self, name, param, grad):
        xp = get_array_module(param)
        m = self._slot("m", name, param)
        v = self._slot("v", name, param)
        m += (1 - self.beta1) * (grad - m)
        v += (1 - self.beta2) * (grad * grad - v)
        param -= self._lr_t * m / (xp.sqrt(v) + EPS)


#: Optimizers by their command-line names.
OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def get_optimizer(name: str, **kwargs) -> Optimizer:
    """Build an optimizer by name ('sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam')."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)
