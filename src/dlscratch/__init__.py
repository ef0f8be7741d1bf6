"""dlscratch: deep learning from scratch in Python and NumPy.

The networks, layers, losses and optimizers of chapters 3-8 of Koki Saito's
*Deep Learning from Scratch*, written to be read, tested and used::

    from dlscratch import MultiLayerNet, Adam
    from dlscratch.data import load_mnist

    (x_train, t_train), (x_test, t_test) = load_mnist()
    net = MultiLayerNet(784, [100, 100], 10)
    opt = Adam(lr=1e-3)
    grads = net.gradient(x_train[:100], t_train[:100])
    opt.update(net.params, grads)

The numeric core imports only NumPy. ``Trainer``, ``History``, ``load_mnist``,
``save_model``, ``load_model`` and ``load_book_weights`` are importable from here
too; they are loaded on first use, so ``import dlscratch`` stays light.
"""

__version__ = "0.1.0"

from dlscratch.functions import (
    cross_entropy_error,
    identity_function,
    mean_squared_error,
    mean_squared_error_mean,
    relu,
    sigmoid,
    softmax,
    step_function,
    tanh,
)
from dlscratch.gradient import (
    gradient_check,
    gradient_descent,
    numerical_diff,
    numerical_gradient,
)
from dlscratch.init import he_std, init_weight, xavier_std
from dlscratch.layers import (
    AddLayer,
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    IdentityWithLoss,
    MulLayer,
    Pooling,
    Relu,
    Sigmoid,
    SigmoidWithLoss,
    SoftmaxWithLoss,
    Tanh,
)
from dlscratch.layers.leaky_relu import LeakyReLU
from dlscratch.nets import (
    DeepConvNet,
    MultiLayerNet,
    SimpleConvNet,
    SimpleNet,
    TwoLayerNet,
    build_network,
)
from dlscratch.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from dlscratch.optim.adamw import AdamW

#: Names importable from ``dlscratch`` whose modules load on first use (PEP 562).
_LAZY = {
    "Trainer": "dlscratch.training",
    "History": "dlscratch.training",
    "load_mnist": "dlscratch.data",
    "save_model": "dlscratch.io",
    "load_model": "dlscratch.io",
    "load_book_weights": "dlscratch.io",
    "RunConfig": "dlscratch.config",
    "build_trainer": "dlscratch.config",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dlscratch' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "AddLayer",
    "Affine",
    "BatchNormalization",
    "Convolution",
    "DeepConvNet",
    "Dropout",
    "History",
    "IdentityWithLoss",
    "LeakyReLU",
    "Momentum",
    "MulLayer",
    "MultiLayerNet",
    "Nesterov",
    "Pooling",
    "RMSprop",
    "RunConfig",
    "Relu",
    "Sigmoid",
    "SigmoidWithLoss",
    "SimpleConvNet",
    "SimpleNet",
    "SoftmaxWithLoss",
    "Tanh",
    "Trainer",
    "TwoLayerNet",
    "__version__",
    "build_network",
    "build_trainer",
    "cross_entropy_error",
    "get_optimizer",
    "gradient_check",
    "gradient_descent",
    "he_std",
    "identity_function",
    "init_weight",
    "load_book_weights",
    "load_mnist",
    "load_model",
    "mean_squared_error",
    "mean_squared_error_mean",
    "numerical_diff",
    "numerical_gradient",
    "relu",
    "save_model",
    "sigmoid",
    "softmax",
    "step_function",
    "tanh",
    "xavier_std",
]
