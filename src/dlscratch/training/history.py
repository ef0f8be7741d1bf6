"""What happened during training: losses per step, metrics per epoch."""

from __future__ import annotations

import math

from dlscratch.fileio import write_csv

#: Per-epoch columns, in the order of :meth:`History.to_csv`.
EPOCH_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "batch_loss",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "time_s",
)

#: Metrics an early-stopping rule may watch, and whether larger is better.
MONITORS = {"val_acc": True, "val_loss": False, "train_acc": True, "train_loss": False}


class History:
    """The record of one training run.

    Attributes
    ----------
    losses : list of float
        The training loss of every mini-batch, in order (the book's
        ``train_loss_list``), in train mode (dropout on) and including the
        weight-decay penalty.
    epochs : list of dict
        One row per completed epoch with the keys of :data:`EPOCH_COLUMNS`:
        ``epoch`` (1-based), ``step`` (steps done at its end), ``lr`` (the
        learning rate used in it), ``batch_loss`` (mean of its mini-batch
        losses), ``train_loss``/``train_acc`` and ``val_loss``/``val_acc``
        (measured after the epoch in inference mode; ``None`` without
        validation data) and ``time_s`` (seconds for its steps and evaluation).
    best_epoch : int or None
        Epoch whose weights the network holds after early stopping restored them.
    stopped_early : bool
        True when a callback ended training before the last epoch.
    """

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.epochs: list[dict] = []
        self.best_epoch: int | None = None
        self.stopped_early = False

    # -- recording ----------------------------------------------------------------------
    def record_epoch(self, row: dict) -> None:
        """Append one epoch's row (missing columns are stored as None)."""
        self.epochs.append({key: row.get(key) for key in EPOCH_COLUMNS})

    # -- reading ------------------------------------------------------------------------
    def column(self, name: str) -> list:
        """One per-epoch column as a list, e.g. ``history.column("val_acc")``."""
        if name not in EPOCH_COLUMNS:
            raise KeyError(f"unknown history column {name!r}; columns are {EPOCH_COLUMNS}")
        return [row[name] for row in self.epochs]

    @property
    def history(self) -> dict:
        """Per-epoch columns as a dict of lists, as Keras's ``History.history``.

        ``history.history["val_acc"]`` is ``history.val_acc``. Keys are the columns of
        :data:`EPOCH_COLUMNS` that hold a value (``val_loss``/``val_acc`` are left out of
        a run without validation data); the lists are copies.
        """
        columns = {name: self.column(name) for name in EPOCH_COLUMNS}
        return {k: v for k, v in columns.items() if any(x is not None for x in v)}

    @property
    def train_acc(self) -> list:
        return self.column("train_acc")

    @property
    def val_acc(self) -> list:
        return self.column("val_acc")

    @property
    def train_loss(self) -> list:
        return self.column("train_loss")

    @property
    def val_loss(self) -> list:
        return self.column("val_loss")

    @property
    def lr(self) -> list:
        return self.column("lr")

    @property
    def epoch_times(self) -> list:
        return self.column("time_s")

    def __len__(self) -> int:
        return len(self.epochs)

    def last(self) -> dict:
        """The latest epoch's row (an empty dict before the first epoch ends)."""
        return dict(self.epochs[-1]) if self.epochs else {}

    def best(self, monitor: str = "val_acc") -> dict:
        """The row with the best value of ``monitor`` (the earliest one on ties)."""
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
        rows = [r for r in self.epochs if r[monitor] is not None and math.isfinite(r[monitor])]
        if not rows:
            raise ValueError(f"no epoch has a value for {monitor!r}")
        sign = 1 if MONITORS[monitor] else -1
        return dict(max(rows, key=lambda r: (sign * r[monitor], -r["epoch"])))

    # -- saving -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON-serialisable; :meth:`from_dict` inverts it)."""
        return {
            "losses": list(self.losses),
            "epochs": [dict(row) for row in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Rebuild a History from :meth:`to_dict`'s output."""
        history = cls()
        history.losses = [float(v) for v in data.get("losses", [])]
        for row in data.get("epochs", []):
            history.record_epoch(row)
        history.best_epoch = data.get("best_epoch")
        history.stopped_early = bool(data.get("stopped_early", False))
        return history

    def to_csv(self, path):
        """Write the per-epoch table (columns :data:`EPOCH_COLUMNS`) atomically.

        Missing values (no validation data) are empty cells.
        """
        rows = [["" if row[k] is None else row[k] for k in EPOCH_COLUMNS] for row in self.epochs]
        return write_csv(path, EPOCH_COLUMNS, rows)

    def losses_to_csv(self, path):
        """Write the per-step losses as ``step,loss`` rows atomically."""
        return write_csv(path, ("step", "loss"), enumerate(self.losses, start=1))

    def __repr__(self) -> str:
        last = self.last()
        if not last:
            return "History(0 epochs)"
        parts = [f"{len(self.epochs)} epochs", f"{len(self.losses)} steps"]
        for key in ("train_acc", "val_acc"):
            if last.get(key) is not None:
                parts.append(f"{key}={last[key]:.4f}")
        return f"History({', '.join(parts)})"
