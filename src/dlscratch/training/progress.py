"""One progress bar for the whole run (tqdm), with the running loss and accuracy and an ETA."""

from __future__ import annotations

import sys
import time

from dlscratch.training.callbacks import Callback


class _EpochMeans:
    """The running mean loss and accuracy of the current epoch, and a redraw clock."""

    def __init__(self, mininterval: float) -> None:
        self.mininterval = mininterval
        self.loss_sum = 0.0
        self.correct = self.seen = self.steps = 0
        self.last = time.perf_counter()

    def add(self, trainer, loss: float) -> bool:
        """Count one step; whether ``mininterval`` has passed since the last report."""
        self.loss_sum += loss
        self.steps += 1
        correct, seen = trainer.last_batch_correct()
        self.correct += correct
        self.seen += seen
        now = time.perf_counter()
        if now - self.last < self.mininterval:
            return False
        self.last = now
        return True

    @property
    def loss(self) -> float:
        return self.loss_sum / self.steps

    @property
    def acc(self) -> float | None:
        return self.correct / self.seen if self.seen else None


class ProgressBar(Callback):
    """Show one tqdm bar over every step of the run on standard error.

    The bar counts the steps of all epochs, so tqdm's ETA is the time to the end
    of the run; its label says which epoch is running and shows the mean
    mini-batch loss and accuracy of that epoch so far (in train mode, as the
    network saw each batch). At the end of each epoch the bar steps aside for the
    epoch's summary line (``verbose=True``) and is drawn again below it. It is
    redrawn at most every ``mininterval`` seconds; between redraws a step costs a
    few additions, an arg-max over the batch's scores and a clock read.

    Parameters
    ----------
    mininterval : float
        Seconds between redraws.
    disable : bool or None
        True: no bar; None (default): only when standard error is a terminal.
    file : text stream
        Where to draw (default ``sys.stderr``).
    """

    order = -10

    def __init__(self, mininterval: float = 0.5, disable: bool | None = None, file=None) -> None:
        self.mininterval = float(mininterval)
        self.disable = disable
        self.file = file
        self.bar = None

    def _stream(self):
        return self.file if self.file is not None else sys.stderr

    @property
    def enabled(self) -> bool:
        if self.disable is None:
            isatty = getattr(self._stream(), "isatty", None)
            return bool(isatty and isatty())
        return not self.disable

    @property
    def wants_step_end(self) -> bool:
        return self.enabled

    def on_train_begin(self, trainer) -> None:
        self.close()
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.epochs * trainer.steps_per_epoch,
            initial=trainer.step,
            unit="batch",
            leave=False,
            mininterval=self.mininterval,
            file=self._stream(),
            dynamic_ncols=True,
        )

    def on_epoch_begin(self, trainer, epoch) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(f"epoch {epoch}/{trainer.epochs}", refresh=False)
        self.bar.refresh()
        self._means = _EpochMeans(self.mininterval)
        self._pending = 0

    def on_step_end(self, trainer, step, loss) -> None:
        if self.bar is None:
            return
        self._pending += 1
        if not self._means.add(trainer, loss):
            return
        postfix = f"loss {self._means.loss:.4f}"
        if self._means.acc is not None:
            postfix += f", acc {self._means.acc:.3f}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(self._pending)
        self._pending = 0

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self.bar is not None:
            if self._pending:
                self.bar.update(self._pending)
                self._pending = 0
            self.bar.clear()  # the epoch's summary line is printed next, then the bar again

    def on_train_end(self, trainer) -> None:
        self.close()

    def on_interrupt(self, trainer):
        self.close()
        return None

    def close(self) -> None:
        """Close the bar, if any (called by the trainer when fit ends, even on errors)."""
        if self.bar is not None:
            if getattr(self, "_pending", 0):
                self.bar.update(self._pending)
                self._pending = 0
            self.bar.close()
            self.bar = None


class JsonProgress(Callback):
    """Progress as JSON lines, for programs that follow a run (the web app's training page).

    Writes one object per line to ``file`` (default standard output):
    ``{"event": "progress", "epoch", "epochs", "step", "steps", "loss", "acc"}`` at most
    every ``mininterval`` seconds while an epoch runs (``step``/``steps`` count within the
    epoch; ``loss``/``acc`` are the epoch's running means, as the progress bar shows), and
    ``{"event": "epoch", ...}`` with the epoch's History row when it ends.
    """

    order = -10
    wants_step_end = True

    def __init__(self, mininterval: float = 0.2, file=None) -> None:
        self.mininterval = float(mininterval)
        self.file = file

    def _write(self, obj: dict) -> None:
        import json

        stream = self.file if self.file is not None else sys.stdout
        stream.write(json.dumps(obj, allow_nan=False, default=float) + "\n")
        stream.flush()

    def on_epoch_begin(self, trainer, epoch) -> None:
        self._epoch = epoch
        self._means = _EpochMeans(self.mininterval)

    def on_step_end(self, trainer, step, loss) -> None:
        if not self._means.add(trainer, loss):
            return
        self._write({
            "event": "progress",
            "epoch": self._epoch,
            "epochs": trainer.epochs,
            "step": trainer.step_in_epoch,
            "steps": trainer.steps_per_epoch,
            "loss": self._means.loss,
            "acc": self._means.acc,
        })

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        self._write({"event": "epoch", "epochs": trainer.epochs, **logs})
