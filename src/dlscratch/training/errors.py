"""Exceptions that end training early."""

from __future__ import annotations


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite.

    Raised before the offending step's update is applied, so the network
    holds the last finite parameters.

    Attributes
    ----------
    step : int
        Global step (1-based: the ``step``-th mini-batch of the run).
    epoch : int
        Epoch (1-based) the step belongs to.
    loss : float
        The non-finite value (``nan``, ``inf`` or ``-inf``).
    lr : float or None
        The learning rate at that step.
    """

    def __init__(
        self,
        step: int,
        epoch: int,
        loss: float,
        lr: float | None = None,
        *,
        cause: str = "learning rate",
        what: str | None = None,
    ) -> None:
        self.step, self.epoch, self.loss, self.lr, self.cause = step, epoch, loss, lr, cause
        if cause == "weight decay":
            hint = "lower the weight decay (lambda times the learning rate must stay well below 1)"
        elif cause == "init scale":
            hint = "use a smaller initial weight scale ('he' or 'xavier' instead of a large std)"
        else:
            hint = "lower the learning rate"
            if lr is not None:
                hint += f" (it is {lr:g}; try {lr / 10:g})"
        what = what or f"the training loss became {loss}"
        super().__init__(
            f"{what} at step {step} (epoch {epoch}); the network is diverging: {hint}, "
            "or check the inputs are scaled to [0, 1]"
        )


class DivergedError(NonFiniteLossError):
    """The loss is finite but has run far away from where it started (or the weights have).

    The cross-entropy is clipped, so a diverging network can keep a finite loss of
    1e20 and chance accuracy for ever; this error stops it instead. ``cause`` names
    the likely culprit: ``"learning rate"``, ``"weight decay"`` or ``"init scale"``.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C (SIGINT) at a step boundary.

    A subclass of KeyboardInterrupt, so code that does not know about it
    still sees an ordinary interrupt.

    Attributes
    ----------
    history : History
        Everything recorded up to the interruption.
    checkpoint : pathlib.Path or None
        The checkpoint written on the way out (None when no
        :class:`~dlscratch.training.Checkpoint` callback was given).
    epoch : int
        Completed epochs.
    step : int
        Completed steps (mini-batches) in the whole run.
    """

    def __init__(self, history, checkpoint, epoch: int, step: int) -> None:
        self.history, self.checkpoint, self.epoch, self.step = history, checkpoint, epoch, step
        where = f"after step {step} ({epoch} full epoch{'' if epoch == 1 else 's'} done)"
        saved = (
            f"checkpoint saved to {checkpoint}"
            if checkpoint is not None
            else "no checkpoint was saved (add a Checkpoint callback to be able to resume)"
        )
        super().__init__(f"training interrupted {where}; {saved}")
