"""Training: the :class:`Trainer` loop, its :class:`History`, callbacks and schedules.

::

    from dlscratch.training import Trainer, EarlyStopping, CosineLR, Checkpoint

    trainer = Trainer(net, Adam(1e-3), x_train, t_train, x_val, t_val, epochs=10, rng=0,
                      callbacks=[CosineLR(), EarlyStopping("val_acc", patience=3),
                                 Checkpoint("runs/exp1")])
    history = trainer.fit()            # Ctrl-C saves runs/exp1/checkpoint.npz
    trainer = Trainer.resume("runs/exp1/checkpoint.npz", x_train, t_train, x_val, t_val,
                             callbacks=[...same callbacks...])
    trainer.fit()                      # continues exactly where it stopped

Modules: :mod:`~dlscratch.training.trainer` (the loop, checkpoints, resume),
:mod:`~dlscratch.training.history`, :mod:`~dlscratch.training.callbacks`
(early stopping, checkpoints, logging hooks), :mod:`~dlscratch.training.schedules`
(learning-rate schedules), :mod:`~dlscratch.training.metrics` (evaluation,
confusion matrix, precision/recall), :mod:`~dlscratch.training.progress` (tqdm bar).
"""

from dlscratch.training.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochLogger,
    LambdaCallback,
    format_epoch,
)
from dlscratch.training.errors import DivergedError, NonFiniteLossError, TrainingInterrupted
from dlscratch.training.history import EPOCH_COLUMNS, History
from dlscratch.training.metrics import (
    ClassReport,
    confident_mistakes,
    confusion_matrix,
    evaluate,
    format_confusion,
    predict_scores,
)
from dlscratch.training.progress import ProgressBar
from dlscratch.training.schedules import SCHEDULES, CosineLR, ExponentialLR, LRSchedule, StepLR
from dlscratch.training.trainer import Trainer

__all__ = [
    "EPOCH_COLUMNS",
    "SCHEDULES",
    "Callback",
    "Checkpoint",
    "ClassReport",
    "CosineLR",
    "DivergedError",
    "EarlyStopping",
    "EpochLogger",
    "ExponentialLR",
    "History",
    "LRSchedule",
    "LambdaCallback",
    "NonFiniteLossError",
    "ProgressBar",
    "StepLR",
    "Trainer",
    "TrainingInterrupted",
    "confident_mistakes",
    "confusion_matrix",
    "evaluate",
    "format_confusion",
    "format_epoch",
    "predict_scores",
]
