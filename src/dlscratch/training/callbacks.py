"""Callbacks: code that runs at fixed points of :meth:`Trainer.fit`.

A callback subclasses :class:`Callback` and overrides any of the hooks::

    on_train_begin(trainer)
    on_epoch_begin(trainer, epoch)          # epoch is 1-based
    on_step_end(trainer, step, loss)        # after every optimizer update
    on_epoch_end(trainer, epoch, logs)      # logs: the epoch's row of the History
    on_train_end(trainer)
    on_interrupt(trainer)                   # Ctrl-C; may return a checkpoint path

Callbacks run in ascending ``order`` (then in the order given): learning-rate
schedules first, :class:`Checkpoint` last, so a checkpoint holds the state
every other callback left after the epoch. A callback that keeps state across
epochs returns it from ``state_dict()`` (JSON values and NumPy arrays), and
gets it back through ``load_state_dict()`` when training resumes.
"""

from __future__ import annotations

import math
import numbers
import sys
from pathlib import Path

from dlscratch.training.history import MONITORS


class Callback:
    """Base class: every hook does nothing."""

    #: Callbacks run in ascending ``order``; ties keep the order they were given in.
    order = 0

    @property
    def wants_step_end(self) -> bool:
        """Whether :meth:`on_step_end` does anything (the trainer skips it per step otherwise)."""
        return type(self).on_step_end is not Callback.on_step_end

    def on_train_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        pass

    def on_step_end(self, trainer, step: int, loss: float) -> None:
        pass

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass

    def on_interrupt(self, trainer):
        """Called once on Ctrl-C, at a step boundary; return a saved checkpoint's path or None."""
        return None

    def state_dict(self) -> dict:
        """State to save in a checkpoint (JSON values and NumPy arrays)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LambdaCallback(Callback):
    """A hook for custom logging: plain functions called per epoch and/or per step.

    The per-epoch and per-step functions may take the logs alone, ``f(logs)``, or the
    epoch (step) number first, as Keras's ``LambdaCallback`` does, ``f(epoch, logs)``;
    which one is decided from the function's required positional parameters.

    Parameters
    ----------
    on_epoch_end : callable(logs) or callable(epoch, logs), optional
        Called after each epoch with its 1-based number and its row of the History
        (``epoch``, ``step``, ``lr``, ``batch_loss``, ``train_loss``, ``train_acc``,
        ``val_loss``, ``val_acc``, ``time_s``).
    on_step_end : callable(logs) or callable(step, logs), optional
        Called after each optimizer step (1-based over the run) with
        ``{"epoch", "step", "loss", "lr"}``.
    on_train_begin, on_train_end : callable(trainer) -> None, optional

    Examples
    --------
    >>> rows = []
    >>> hook = LambdaCallback(on_epoch_end=rows.append)
    >>> keras_style = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["val_acc"]))
    """

    def __init__(self, on_epoch_end=None, on_step_end=None, on_train_begin=None, on_train_end=None):
        for name, fn in (
            ("on_epoch_end", on_epoch_end),
            ("on_step_end", on_step_end),
            ("on_train_begin", on_train_begin),
            ("on_train_end", on_train_end),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self._epoch_fn, self._step_fn = on_epoch_end, on_step_end
        self._begin_fn, self._end_fn = on_train_begin, on_train_end
        self._epoch_takes_number = self._takes_number("on_epoch_end", on_epoch_end, "epoch")
        self._step_takes_number = self._takes_number("on_step_end", on_step_end, "step")

    @staticmethod
    def _takes_number(name: str, fn, number: str) -> bool:
        """Whether ``fn`` is called as ``fn(number, logs)`` (else ``fn(logs)``)."""
        import inspect

        if fn is None:
            return False
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: the plain form
            return False
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        required = [p for p in params if p.kind in positional and p.default is p.empty]
        star = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)
        if len(required) > 2:
            raise TypeError(
                f"{name} must take (logs) or ({number}, logs), but it requires "
                f"{len(required)} arguments: {', '.join(p.name for p in required)}"
            )
        return len(required) == 2 or (star and not required)

    @property
    def wants_step_end(self) -> bool:
        return self._step_fn is not None

    def on_train_begin(self, trainer) -> None:
        if self._begin_fn is not None:
            self._begin_fn(trainer)

    def on_step_end(self, trainer, step, loss) -> None:
        lr = trainer.optimizer.lr
        logs = {"epoch": trainer.epoch + 1, "step": step, "loss": loss, "lr": lr}
        if self._step_takes_number:
            self._step_fn(step, logs)
        else:
            self._step_fn(logs)

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self._epoch_fn is None:
            return
        if self._epoch_takes_number:
            self._epoch_fn(epoch, dict(logs))
        else:
            self._epoch_fn(dict(logs))

    def on_train_end(self, trainer) -> None:
        if self._end_fn is not None:
            self._end_fn(trainer)


class EarlyStopping(Callback):
    """Stop when a validation metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : {'val_acc', 'val_loss', 'train_acc', 'train_loss'}
        The epoch metric to watch (accuracies are maximised, losses minimised).
        Decisions use validation data, never the test set.
    patience : int
        Epochs without improvement to allow before stopping (>= 1).
    min_delta : float
        A change smaller than this does not count as an improvement.
    restore_best_weights : bool
        When training ends (stopped or not), load the parameters and batch-norm
        statistics of the best epoch back into the network.

    Attributes
    ----------
    best : float or None
        Best value seen.
    best_epoch : int or None
        1-based epoch where it was seen.
    stopped_epoch : int or None
        Epoch after which training was stopped (None if it ran to the end).
    """

    def __init__(
        self,
        monitor: str = "val_acc",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self._maximize = MONITORS[monitor]
        self.best = None
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self.best_state = None

    def on_train_begin(self, trainer) -> None:
        if self.monitor.startswith("val_") and not trainer.has_validation:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}) needs validation data: pass x_val "
                "and t_val to the Trainer, or monitor 'train_loss' / 'train_acc'"
            )

    def _improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        gain = value - self.best if self._maximize else self.best - value
        return gain > self.min_delta

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        value = logs.get(self.monitor)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_state = trainer.network.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if not self.restore_best_weights or self.best_state is None:
            return
        trainer.network.load_state_dict(self.best_state)
        trainer.history.best_epoch = self.best_epoch

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "wait": self.wait,
            "best_state": dict(self.best_state) if self.best_state is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.wait = int(state["wait"])
        self.best_state = state["best_state"]

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
            f"restore_best_weights={self.restore_best_weights})"
        )


class Checkpoint(Callback):
    """Save everything needed to resume after every ``every`` epochs, and on Ctrl-C.

    The file holds the network, the optimizer state and the trainer's own
    state (epoch, step, shuffling generator, dropout generators, history,
    callbacks' state) in ONE ``.npz`` file: see :meth:`Trainer.save_checkpoint`.
    The write is atomic, so at every instant - a kill or a full disk while
    saving included - the path holds either the previous complete checkpoint
    or the new one.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` file, or a directory (``DIR/checkpoint.npz`` is written).
    every : int
        Save after every ``every``-th epoch (and always after the last one).
    metadata : dict, optional
        Extra JSON stored with each checkpoint (a run's configuration, say).
    save_on_interrupt : bool
        Also save when training is interrupted with Ctrl-C.
    """

    order = 100
    FILENAME = "checkpoint.npz"

    def __init__(self, path, every: int = 1, metadata=None, save_on_interrupt: bool = True):
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        path = Path(path)
        self.path = path / self.FILENAME if path.is_dir() or not path.suffix else path
        self.every = int(every)
        self.metadata = dict(metadata or {})
        self.save_on_interrupt = bool(save_on_interrupt)
        self.last_saved = None

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if epoch % self.every == 0 or epoch >= trainer.epochs or trainer.stop_training:
            self.last_saved = trainer.save_checkpoint(self.path, metadata=self.metadata)

    def on_interrupt(self, trainer):
        if not self.save_on_interrupt:
            return None
        self.last_saved = trainer.save_checkpoint(self.path, metadata=self.metadata)
        return self.last_saved

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, every={self.every})"


class EpochLogger(Callback):
    """Print one line per epoch: losses, accuracies, learning rate and time.

    Parameters
    ----------
    print_fn : callable(str), optional
        Where the lines go (default: ``print`` to standard output).
    """

    order = 50

    def __init__(self, print_fn=None) -> None:
        self.print_fn = print_fn if print_fn is not None else _print_stdout

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        self.print_fn(format_epoch(logs, trainer.epochs))


def format_epoch(logs: dict, epochs: int | None = None) -> str:
    """One line for an epoch's row of the History, e.g.

    ``epoch  3/10  loss 0.0812  train acc 0.9752  val acc 0.9701 (loss 0.0977)  lr 0.001  1.2s``
    """
    width = len(str(epochs)) if epochs else 1
    total = f"/{epochs}" if epochs else ""
    parts = [f"epoch {logs['epoch']:>{width}}{total}"]
    if logs.get("train_loss") is not None:
        parts.append(f"loss {logs['train_loss']:.4f}")
    if logs.get("train_acc") is not None:
        parts.append(f"train acc {logs['train_acc']:.4f}")
    if logs.get("val_acc") is not None:
        parts.append(f"val acc {logs['val_acc']:.4f} (loss {logs['val_loss']:.4f})")
    if logs.get("lr") is not None:
        parts.append(f"lr {logs['lr']:.3g}")
    if logs.get("time_s") is not None:
        parts.append(f"{logs['time_s']:.1f}s")
    return "  ".join(parts)


def _print_stdout(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
