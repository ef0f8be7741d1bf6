"""Learning-rate schedules: set ``optimizer.lr`` at the start of every epoch.

Each schedule is a callback with ``lr_at(epoch_index)`` (0-based) giving the
learning rate for that epoch from the base rate ``base_lr`` (by default the
optimizer's ``lr`` when training starts):

==================  ============================================================
StepLR              ``base_lr * gamma ** (e // step_size)``
ExponentialLR       ``base_lr * gamma ** e``
CosineLR            ``min_lr + (base_lr - min_lr) * (1 + cos(pi * e / T)) / 2``
==================  ============================================================
"""

from __future__ import annotations

import math
import numbers

from dlscratch.checks import positive_float, positive_int
from dlscratch.registry import Registry
from dlscratch.training.callbacks import Callback


def _positive(name, value, integer=False):
    return positive_int(name, value) if integer else positive_float(name, value)


class LRSchedule(Callback):
    """Base class: subclasses implement :meth:`lr_at`.

    Parameters
    ----------
    base_lr : float, optional
        The rate of epoch 0; None takes the optimizer's ``lr`` when training starts.
    """

    order = -20

    def __init__(self, base_lr: float | None = None) -> None:
        self.base_lr = None if base_lr is None else _positive("base_lr", base_lr)

    #: One line for ``--help``.
    summary = ""

    @classmethod
    def for_run(cls, epochs: int) -> LRSchedule:  # pragma: no cover - interface
        """The schedule a run of ``epochs`` epochs uses when chosen by name."""
        raise NotImplementedError

    def lr_at(self, epoch: int) -> float:  # pragma: no cover - interface
        """Learning rate for 0-based epoch ``epoch``."""
        raise NotImplementedError

    def _base(self) -> float:
        if self.base_lr is None:
            raise ValueError(
                f"{type(self).__name__} has no base_lr yet: pass base_lr, or let the Trainer "
                "take it from the optimizer when training starts"
            )
        return self.base_lr

    def on_train_begin(self, trainer) -> None:
        if self.base_lr is None:
            self.base_lr = float(trainer.optimizer.lr)

    def on_epoch_begin(self, trainer, epoch) -> None:
        trainer.optimizer.lr = self.lr_at(epoch - 1)

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        self.base_lr = state["base_lr"]


class StepLR(LRSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    summary = "x0.1 every third of the epochs"

    def __init__(self, step_size: int, gamma: float = 0.1, base_lr: float | None = None) -> None:
        super().__init__(base_lr)
        self.step_size = _positive("step_size", step_size, integer=True)
        self.gamma = _positive("gamma", gamma)

    @classmethod
    def for_run(cls, epochs: int) -> StepLR:
        """The run default: x0.1 every third of the epochs."""
        return cls(step_size=max(epochs // 3, 1), gamma=0.1)

    def lr_at(self, epoch: int) -> float:
        return self._base() * self.gamma ** (epoch // self.step_size)

    def __repr__(self) -> str:
        return f"StepLR(step_size={self.step_size}, gamma={self.gamma})"


class ExponentialLR(LRSchedule):
    """Multiply the rate by ``gamma`` every epoch."""

    summary = "x0.9 every epoch"

    def __init__(self, gamma: float, base_lr: float | None = None) -> None:
        super().__init__(base_lr)
        self.gamma = _positive("gamma", gamma)

    @classmethod
    def for_run(cls, epochs: int) -> ExponentialLR:
        """The run default: x0.9 every epoch."""
        return cls(gamma=0.9)

    def lr_at(self, epoch: int) -> float:
        return self._base() * self.gamma**epoch

    def __repr__(self) -> str:
        return f"ExponentialLR(gamma={self.gamma})"


class CosineLR(LRSchedule):
    """Half a cosine from ``base_lr`` (epoch 0) towards ``min_lr`` (epoch ``total_epochs``).

    Parameters
    ----------
    total_epochs : int, optional
        Length ``T`` of the decay; None takes the Trainer's ``epochs``.
    min_lr : float
        The floor, >= 0.
    """

    summary = "half a cosine down to 0"

    def __init__(
        self, total_epochs: int | None = None, min_lr: float = 0.0, base_lr: float | None = None
    ) -> None:
        super().__init__(base_lr)
        self.total_epochs = (
            None if total_epochs is None else _positive("total_epochs", total_epochs, integer=True)
        )
        if not isinstance(min_lr, numbers.Real) or not min_lr >= 0:
            raise ValueError(f"min_lr must be a number >= 0, got {min_lr!r}")
        self.min_lr = float(min_lr)

    @classmethod
    def for_run(cls, epochs: int) -> CosineLR:
        """The run default: from the base rate to 0 over the run's epochs."""
        return cls()

    def on_train_begin(self, trainer) -> None:
        super().on_train_begin(trainer)
        if self.total_epochs is None:
            self.total_epochs = int(trainer.epochs)

    def lr_at(self, epoch: int) -> float:
        if self.total_epochs is None:
            raise ValueError("CosineLR needs total_epochs (or a Trainer to take its epochs from)")
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self._base() - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "total_epochs": self.total_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.base_lr = state["base_lr"]
        self.total_epochs = state["total_epochs"]

    def __repr__(self) -> str:
        return f"CosineLR(total_epochs={self.total_epochs}, min_lr={self.min_lr})"


#: Schedules by their command-line names.
SCHEDULES = Registry("schedule")
SCHEDULES.register("step")(StepLR)
SCHEDULES.register("exponential")(ExponentialLR)
SCHEDULES.register("cosine")(CosineLR)
