"""The training loop: mini-batches, updates, evaluation per epoch, callbacks, resume.

>>> from dlscratch import MultiLayerNet, Adam
>>> from dlscratch.data import load_mnist, train_val_split
>>> from dlscratch.training import Trainer, EarlyStopping
>>> (x, t), _ = load_mnist(normalize=False)                       # doctest: +SKIP
>>> (x_tr, t_tr), (x_val, t_val) = train_val_split(x, t, 0.1, rng=0)  # doctest: +SKIP
>>> net = MultiLayerNet(784, [100, 100], 10, rng=0)
>>> trainer = Trainer(net, Adam(1e-3), x_tr, t_tr, x_val, t_val, epochs=10, rng=0,
...                   callbacks=[EarlyStopping("val_acc", patience=3)])  # doctest: +SKIP
>>> history = trainer.fit()                                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from dlscratch.backend import to_device
from dlscratch.checks import check_pair, positive_int
from dlscratch.data.batching import BatchSampler, as_rng, to_float
from dlscratch.training.callbacks import Callback, EpochLogger, LambdaCallback
from dlscratch.training.checkpoint import STATE_VERSION, apply_trainer_state
from dlscratch.training.errors import DivergedError, NonFiniteLossError, TrainingInterrupted
from dlscratch.training.history import History
from dlscratch.training.metrics import evaluate

SAMPLING = ("epoch", "random")
#: A batch loss this many times its starting value (or log(classes)) means divergence.
DIVERGENCE_FACTOR = 10.0


class Trainer:
    """Train a network with an optimizer on mini-batches, one epoch at a time.

    Parameters
    ----------
    network : Network
        A :class:`~dlscratch.nets.Network`: anything with ``params``,
        ``gradient(x, t, reuse=True)``, ``last_loss``, ``predict(x)`` and ``dtype``.
    optimizer : Optimizer
        Updates ``network.params`` in place (:mod:`dlscratch.optim`).
    x_train : ndarray (N, D)
        uint8 pixels (scaled to [0, 1] one batch at a time, so the set stays
        small in memory) or floats (used as they are).
    t_train : ndarray (N,) integer labels or (N, C) one-hot
    x_val, t_val : ndarray, optional
        Validation data, evaluated after every epoch; what early stopping and
        checkpoints decide on. The test set does not belong here.
    epochs : int
        Number of passes (``sampling='epoch'``) or of ``N // batch_size``-step
        rounds (``sampling='random'``).
    batch_size : int
        Samples per update, 1 to N.
    sampling : {'epoch', 'random'}
        ``'epoch'`` (default): each epoch is a shuffled pass over every sample
        once (the last batch may be smaller). ``'random'``: the book's way,
        ``N // batch_size`` batches per epoch drawn with replacement.
    rng : numpy.random.Generator or int or None
        Randomness for the shuffling. With the same network seed and ``rng``,
        two runs give bit-identical parameters.
    callbacks : sequence of Callback or callable
        See :mod:`dlscratch.training.callbacks`. A plain callable ``f(logs)`` or
        ``f(epoch, logs)`` (Keras's form) is called after every epoch with the epoch's
        row of the History.
    train_eval_size : int or None
        Samples of the training set evaluated after each epoch: None (default)
        the whole set, as the book does; an int, the first that many samples
        (a fixed subset, cheaper for large sets).
    eval_batch_size : int
        Rows per forward pass when evaluating.
    verbose : bool
        Print a one-line summary after each epoch.
    progress : bool or None
        A tqdm bar per epoch: True always, None only on a terminal, False never.
    handle_interrupt : bool
        Catch Ctrl-C (in the main thread): finish the current step, let the
        callbacks save a checkpoint, then raise :class:`TrainingInterrupted`.
        A second Ctrl-C interrupts at once. Where SIGINT is ignored (a process
        started in the background or under ``nohup``) it stays ignored.

    Attributes
    ----------
    history : History
    epoch : int
        Completed epochs.
    step : int
        Completed updates in the whole run.
    stop_training : bool
        Set by a callback to end training after the current epoch.
    """

    def __init__(
        self,
        network,
        optimizer,
        x_train,
        t_train,
        x_val=None,
        t_val=None,
        *,
        epochs: int = 10,
        batch_size: int = 100,
        sampling: str = "epoch",
        rng=None,
        callbacks=(),
        train_eval_size: int | None = None,
        eval_batch_size: int | None = None,
        verbose: bool = False,
        progress: bool | None = False,
        handle_interrupt: bool = True,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.x_train, self.t_train = check_pair(x_train, t_train, "training data", features=True)
        if (x_val is None) != (t_val is None):
            raise ValueError("pass both x_val and t_val, or neither")
        if x_val is not None:
            x_val, t_val = check_pair(x_val, t_val, "validation data", features=True)
        self.x_val, self.t_val = x_val, t_val
        self._device_data = None  # (device, x_train, t_train) once copied to a GPU
        n = len(self.x_train)
        self.epochs = positive_int("epochs", epochs)
        self.batch_size = positive_int("batch_size", batch_size)
        if self.batch_size > n:
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than the training set ({n} samples); "
                f"choose a batch size from 1 to {n}"
            )
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be 'epoch' or 'random', got {sampling!r}")
        self.sampling = sampling
        if train_eval_size is not None:
            train_eval_size = min(positive_int("train_eval_size", train_eval_size), n)
        self.train_eval_size = train_eval_size
        if eval_batch_size is None:  # the network's own (100 for convolutional ones)
            eval_batch_size = getattr(network, "eval_batch_size", 1000)
        self.eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
        self.rng = as_rng(rng)
        self.handle_interrupt = bool(handle_interrupt)

        callbacks = [_as_callback(cb) for cb in callbacks]
        if progress is not False:
            from dlscratch.training.progress import ProgressBar

            callbacks.append(ProgressBar(disable=None if progress is None else False))
        if verbose:
            callbacks.append(EpochLogger())
        # stable sort: schedules, progress bar, user callbacks, logger, checkpoint
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)

        self.history = History()
        self.epoch = 0
        self.step = 0
        self.step_in_epoch = 0
        self.stop_training = False
        self._epoch_elapsed = 0.0  # seconds already spent in a partially done epoch
        self._epoch_rng_state = None
        self._interrupted = False
        self._last_labels = None
        self._loss_reference = None  # first step's loss (see _divergence_limit)

    # -- sizes -----------------------------------------------------------------------------
    @property
    def has_validation(self) -> bool:
        return self.x_val is not None

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.x_train)
        if self.sampling == "random":
            return max(n // self.batch_size, 1)
        return -(-n // self.batch_size)

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> History:
        """Train until ``epochs`` epochs are done or a callback stops training.

        Returns
        -------
        History
            Also kept as ``self.history``.

        Raises
        ------
        NonFiniteLossError
            The loss became NaN or infinite (the step's update is not applied).
        TrainingInterrupted
            Ctrl-C; checkpoint callbacks have saved the state at the last
            completed step, from which :meth:`resume` continues exactly.
        """
        with self._sigint_guard():
            try:
                self._call("on_train_begin")
                while self.epoch < self.epochs and not self.stop_training:
                    self._check_interrupt()
                    self._run_epoch()
                    self._check_interrupt()
                self.history.stopped_early = self.stop_training and self.epoch < self.epochs
                self._call("on_train_end")
            finally:  # e.g. a progress bar left open by an error
                for cb in self.callbacks:
                    if hasattr(cb, "close"):
                        cb.close()
        return self.history

    def _run_epoch(self) -> None:
        net = self.network
        epoch = self.epoch + 1
        # Replaying from the state before this epoch's draws makes a resumed epoch identical.
        self._epoch_rng_state = self.rng.bit_generator.state
        batches = self._epoch_batches()
        self._call("on_epoch_begin", epoch)
        lr = float(self.optimizer.lr)
        start = time.perf_counter() - self._epoch_elapsed
        first_step = self.step + 1 - self.step_in_epoch
        # Overflow inside a diverging step shows up as a non-finite loss, reported there.
        with np.errstate(over="ignore", invalid="ignore"):
            self._run_steps(batches, epoch, start)

        row = {"epoch": epoch, "step": self.step, "lr": lr}
        row["batch_loss"] = float(np.mean(self.history.losses[first_step - 1 :]))
        train_x, train_t = self.x_train, self.t_train
        if self.train_eval_size is not None:
            train_x, train_t = train_x[: self.train_eval_size], train_t[: self.train_eval_size]
        row["train_loss"], row["train_acc"] = evaluate(net, train_x, train_t, self.eval_batch_size)
        if self.has_validation:
            row["val_loss"], row["val_acc"] = evaluate(
                net, self.x_val, self.t_val, self.eval_batch_size
            )
        row["time_s"] = time.perf_counter() - start
        self.history.record_epoch(row)
        self.epoch = epoch
        self.step_in_epoch = 0
        self._epoch_elapsed = 0.0
        self._call("on_epoch_end", epoch, self.history.last())

    def _run_steps(self, batches, epoch: int, start: float) -> None:
        """The hot loop: one gradient and one update per mini-batch, nothing else per step."""
        net, opt = self.network, self.optimizer
        x, t = self.x_train, self.t_train
        dtype = np.dtype(net.dtype)
        device = getattr(net, "device", "cpu")
        if device != "cpu":
            # The whole training set goes to the GPU once (still uint8: 47 MB for MNIST),
            # the epoch's indices once per epoch; batches are then gathered and converted
            # there, with no copy per step.
            x, t = self._training_data_on(device)
            batches = _indices_on(batches, device)
        uint8 = x.dtype == np.uint8
        step_hooks = [cb.on_step_end for cb in self.callbacks if cb.wants_step_end]
        losses = self.history.losses
        for k in range(self.step_in_epoch, len(batches)):
            idx = batches[k]
            xb = x[idx]
            tb = t[idx]
            if uint8:
                xb = to_float(xb, dtype)  # pixels / 255, on the CPU or the GPU
            # reuse=True: the network's own buffers, no input checks (done once in __init__)
            grads = net.gradient(xb, tb, reuse=True)
            loss = net.last_loss
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    self.step + 1, epoch, loss, float(opt.lr), cause=self._likely_cause(loss)
                )
            if loss > self._divergence_limit(loss):
                raise DivergedError(
                    self.step + 1, epoch, loss, float(opt.lr), cause=self._likely_cause(loss),
                    what=f"the training loss rose to {loss:.4g}, more than "
                    f"{DIVERGENCE_FACTOR:g} times its start ({self._loss_reference:.4g})",
                )
            opt.update(net.params, grads)
            self.step += 1
            self.step_in_epoch = k + 1
            losses.append(loss)
            self._last_labels = tb
            for hook in step_hooks:
                hook(self, self.step, loss)
            if self._interrupted:
                self._epoch_elapsed = time.perf_counter() - start
                self._check_interrupt()

    def _divergence_limit(self, loss: float) -> float:
        """The loss above which training counts as diverged (see :data:`DIVERGENCE_FACTOR`).

        The reference is the first step's loss, but at least ``log(classes)`` (chance
        level for softmax), so that a network that starts well is not held to a tiny loss.
        """
        if self._loss_reference is None:
            classes = getattr(self.network, "output_size", None) or 10
            self._loss_reference = max(loss, math.log(max(int(classes), 2)))
        return DIVERGENCE_FACTOR * self._loss_reference

    def _likely_cause(self, loss: float) -> str:
        """Which setting most likely made the run diverge."""
        lam = float(getattr(self.network, "weight_decay_lambda", 0.0) or 0.0)
        if lam * float(self.optimizer.lr) >= 0.5:
            return "weight decay"
        if self.step == 0 and self._loss_reference is None:
            return "init scale"
        return "learning rate"

    def _training_data_on(self, device: str):
        """``(x_train, t_train)`` copied to ``device``, once per Trainer."""
        cached = self._device_data
        if cached is None or cached[0] != device:
            cached = (device, to_device(self.x_train, device), to_device(self.t_train, device))
            self._device_data = cached
        return cached[1], cached[2]

    def _epoch_batches(self):
        """This epoch's mini-batch indices, drawn by :class:`~dlscratch.data.BatchSampler`.

        'random' sampling gives one (steps, batch_size) array (the same draws as the
        sampler's one by one), 'epoch' sampling a list of slices of one permutation.
        """
        sampler = BatchSampler(len(self.x_train), self.batch_size, mode=self.sampling, rng=self.rng)
        batches = list(sampler)
        return np.stack(batches) if self.sampling == "random" else batches

    def last_batch_correct(self) -> tuple[int, int]:
        """(correct, size) of the latest mini-batch, from the loss layer's cached output."""
        y = getattr(self.network.last_layer, "y", None)
        t = self._last_labels
        if y is None or t is None or len(y) != len(t):
            return 0, 0
        if t.ndim == 2:
            t = t.argmax(axis=1)
        return int((y.argmax(axis=1) == t).sum()), len(t)

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # -- Ctrl-C ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _sigint_guard(self):
        self._interrupted = False
        if (
            not self.handle_interrupt
            or threading.current_thread() is not threading.main_thread()
            # Ignored, as for a process started in the background or under nohup: keep it so.
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        ):
            yield
            return

        def handler(signum, frame):
            if self._interrupted:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _check_interrupt(self) -> None:
        if not self._interrupted:
            return
        saved = None
        for cb in self.callbacks:
            path = cb.on_interrupt(self)
            saved = path if path is not None else saved
        raise TrainingInterrupted(self.history, saved, self.epoch, self.step)

    # -- state -------------------------------------------------------------------------------
    def config(self) -> dict:
        """The loop's settings, as stored in checkpoints (keyword arguments of ``Trainer``)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "sampling": self.sampling,
            "train_eval_size": self.train_eval_size,
            "eval_batch_size": self.eval_batch_size,
        }

    def state_dict(self) -> dict:
        """Everything besides network and optimizer needed to continue exactly.

        Callback states may hold NumPy arrays; the rest is JSON.
        """
        mid_epoch = self.step_in_epoch > 0
        return {
            "version": STATE_VERSION,
            "config": self.config(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            # mid-epoch: the state before this epoch's draws, which are replayed on resume
            "rng_state": self._epoch_rng_state if mid_epoch else self.rng.bit_generator.state,
            "epoch_elapsed": self._epoch_elapsed if mid_epoch else 0.0,
            "stop_training": self.stop_training,
            "history": self.history.to_dict(),
            "data": self._data_fingerprint(),
            "callbacks": {key: cb.state_dict() for key, cb in self._keyed_callbacks()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (network and optimizer are separate).

        Every value is checked first (:func:`dlscratch.training.checkpoint.check_trainer_state`);
        a damaged or tampered state raises ValueError and changes nothing.
        """
        from dlscratch.training.checkpoint import apply_trainer_state

        apply_trainer_state(self, state)

    def _keyed_callbacks(self):
        """(key, callback) pairs with stable keys: class name, numbered when repeated."""
        seen: dict[str, int] = {}
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            yield (name if seen[name] == 1 else f"{name}{seen[name]}"), cb

    def _data_fingerprint(self) -> dict:
        def crc(a):
            return None if a is None else zlib.crc32(np.ascontiguousarray(a).view(np.uint8))

        return {
            "n_train": len(self.x_train),
            "n_val": None if self.x_val is None else len(self.x_val),
            "train_crc32": crc(self.t_train),
            "val_crc32": crc(self.t_val),
        }

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, path, metadata: dict | None = None) -> Path:
        """Write network, optimizer and trainer state to ONE ``.npz`` file atomically; return it.

        The file is a :func:`dlscratch.io.save_model` model file (``load_model``
        reads its network) holding also the optimizer state, the trainer state
        with the callbacks' (under ``"trainer"``) and ``metadata`` (under
        ``"run"``): see :mod:`dlscratch.training.checkpoint`.
        """
        from dlscratch.training.checkpoint import save_checkpoint

        return save_checkpoint(self, path, metadata)

    def restore(self, path) -> dict:
        """Load a checkpoint into this trainer's network, optimizer and callbacks.

        Returns the ``metadata`` given to :meth:`save_checkpoint`.
        """
        from dlscratch.training.checkpoint import load_trainer_checkpoint

        ck, state = load_trainer_checkpoint(path, network=self.network, optimizer=self.optimizer)
        apply_trainer_state(self, state, ck.path)
        run = ck.user.get("run")
        return dict(run) if isinstance(run, dict) else {}

    @classmethod
    def resume(
        cls, path, x_train, t_train, x_val=None, t_val=None, *, device: str = "cpu", **kwargs
    ) -> Trainer:
        """A Trainer that continues the run saved at ``path`` where it stopped.

        Network and optimizer are rebuilt from the checkpoint; the loop's
        settings too, except those given in ``kwargs`` (``epochs`` may be raised
        to train longer; ``callbacks``, ``verbose``, ``progress`` must be given
        again - pass the same callbacks for an exact continuation). The data
        must be the same as when the checkpoint was written. ``device`` is where
        the network and optimizer state are loaded ('cpu' or 'cuda').
        """
        from dlscratch.training.checkpoint import load_trainer_checkpoint

        ck, state = load_trainer_checkpoint(path, device=device)
        settings = dict(state["config"])
        settings.update(kwargs)
        trainer = cls(ck.network, ck.optimizer, x_train, t_train, x_val, t_val, **settings)
        apply_trainer_state(trainer, state, ck.path)
        return trainer

    def __repr__(self) -> str:
        return (
            f"Trainer(epochs={self.epochs}, batch_size={self.batch_size}, "
            f"sampling={self.sampling!r}, epoch={self.epoch}, step={self.step})"
        )


# -- helpers ---------------------------------------------------------------------------------


def _as_callback(cb) -> Callback:
    if isinstance(cb, Callback):
        return cb
    if callable(cb):
        return LambdaCallback(on_epoch_end=cb)
    raise TypeError(f"callbacks must be Callback instances or callables, got {type(cb).__name__}")


def _indices_on(batches, device: str):
    """An epoch's index batches (see ``Trainer._epoch_batches``) copied to ``device`` at once."""
    if isinstance(batches, np.ndarray):  # 'random' sampling: one (steps, batch_size) array
        return to_device(batches, device)
    flat = to_device(np.concatenate(batches), device)
    ends = np.cumsum([len(b) for b in batches])
    return [flat[end - len(b) : end] for b, end in zip(batches, ends)]
