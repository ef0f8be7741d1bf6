"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

from dlscratch.optim import BETAS, OPTIMIZERS, Adam, check_grads
from dlscratch.registry import Option


def decays(name: str) -> bool:
    """Whether weight decay applies to the parameter ``name``: weights (``W1``, ...) only.

    Biases (``b``) and batch-norm scales and shifts (``gamma``, ``beta``) are left alone,
    as is usual: shrinking them towards zero does not simplify the function.
    """
    return name.startswith("W")


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam whose weight decay is a separate shrink of the weights, not part of the gradient::

        W <- W - lr * weight_decay * W          (weights only: names W1, W2, ...)
        W <- W - lr_t * m / (sqrt(v) + 1e-7)    (Adam's step, see :class:`Adam`)

    With an L2 penalty in the loss (the book's ``weight_decay_lambda``), Adam divides the
    penalty's gradient by ``sqrt(v)`` like any other, so weights with large gradients are
    hardly decayed; decoupling applies the same relative shrink to every weight.
    ``update`` must receive the parameters by name (``net.params``), which is how it
    knows what is a weight.
    """

    default_lr = 0.001
    options = (
        *BETAS,
        Option(
            "weight_decay", float, 0.01, "decoupled decay rate of the weights",
            low=0.0, log=True,
        ),
    )

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        weight_decay: float = 0.01,
    ) -> None:
        super(Adam, self).__init__(lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)

    def update(self, params, grads) -> None:
        check_grads(params, grads)  # before anything changes
        shrink = 1.0 - float(self.lr) * float(self.weight_decay)
        if shrink != 1.0:
            for name, param in params.items():
                if decays(name):
                    param *= shrink
        super().update(params, grads)
