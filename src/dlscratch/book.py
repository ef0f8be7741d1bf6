"""The book's own names: type the code of *Deep Learning from Scratch* as printed.

The book's chapter 6 scripts build networks and train them with its
``common/trainer.py``::

    from dlscratch.book import MultiLayerNetExtend, Trainer
    from dlscratch.data import load_mnist

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
    x_train = x_train[:300]
    t_train = t_train[:300]

    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100, 100, 100, 100, 100],
                                  output_size=10, use_dropout=True, dropout_ration=0.2)
    trainer = Trainer(network, x_train, t_train, x_test, t_test,
                      epochs=301, mini_batch_size=100,
                      optimizer='sgd', optimizer_param={'lr': 0.01}, verbose=True)
    trainer.train()

    train_acc_list, test_acc_list = trainer.train_acc_list, trainer.test_acc_list

This module is a thin layer of the book's signatures over dlscratch's classes:

* :class:`Trainer` has the book's arguments, lists and schedule (below); it is
  separate from :class:`dlscratch.training.Trainer`, whose epochs, validation
  split and callbacks work differently.
* :class:`MultiLayerNet` and :class:`MultiLayerNetExtend` take the book's
  argument names - including ``dropout_ration``, misspelt as in the book - and
  are :class:`dlscratch.nets.MultiLayerNet` networks underneath. ``predict`` and
  ``loss`` accept the book's ``train_flg``. Dropout is the book's form
  (training multiplies by the 0/1 mask, inference by ``1 - ratio``).
* The optimizer names are the book's (``'SGD'``, ``'Momentum'``, ``'Nesterov'``,
  ``'AdaGrad'``, ``'RMSprop'``, ``'Adam'``, in any case), looked up in
  :data:`dlscratch.optim.OPTIMIZERS`; an optimizer's defaults are the book's.

Two differences from the book, both keyword-only extras: networks take
``dtype`` (float32 by default; ``numerical_gradient`` on a float32 network warns
that it cannot reach the book's ~1e-10 agreement - use ``dtype=np.float64`` for
gradient checks) and ``rng``, and
:class:`Trainer` draws its mini-batches from ``rng`` (a seed or
``numpy.random.Generator``) instead of NumPy's global random state.
"""

from __future__ import annotations

import math

import numpy as np

from dlscratch import nets
from dlscratch.optim import OPTIMIZERS, Optimizer

# -- networks -------------------------------------------------------------------------------


class _BookNetwork:
    """The book's calling conventions on top of a :class:`dlscratch.nets.Network`."""

    def predict(self, x, train_flg: bool = False, *, train: bool | None = None):
        """Scores for ``x``; ``train_flg=True`` runs dropout and batch norm in training mode."""
        return super().predict(x, train=train_flg if train is None else train)

    def loss(self, x, t, train_flg: bool = False, *, train: bool | None = None):
        """Cross-entropy (plus the weight-decay penalty) of ``x`` against ``t``."""
        return super().loss(x, t, train=train_flg if train is None else train)


class MultiLayerNet(_BookNetwork, nets.MultiLayerNet):
    """The book's ``common/multi_layer_net.py``: a fully connected network.

    ``MultiLayerNet(input_size, hidden_size_list, output_size, activation='relu',
    weight_init_std='relu', weight_decay_lambda=0)`` as in the book;
    ``weight_init_std`` is 'relu'/'he', 'sigmoid'/'xavier' or a number.
    """

    def __init__(
        self,
        input_size,
        hidden_size_list,
        output_size,
        activation="relu",
        weight_init_std="relu",
        weight_decay_lambda=0,
        *,
        dtype=np.float32,
        rng=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size_list,
            output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            weight_decay_lambda=weight_decay_lambda,
            dtype=dtype,
            rng=rng,
        )


class MultiLayerNetExtend(_BookNetwork, nets.MultiLayerNet):
    """The book's ``common/multi_layer_net_extend.py``: with dropout and batch normalization.

    ``MultiLayerNetExtend(input_size, hidden_size_list, output_size,
    activation='relu', weight_init_std='relu', weight_decay_lambda=0,
    use_dropout=False, dropout_ration=0.5, use_batchnorm=False)`` - the book's
    names, ``dropout_ration`` included. Dropout is the book's form.
    """

    def __init__(
        self,
        input_size,
        hidden_size_list,
        output_size,
        activation="relu",
        weight_init_std="relu",
        weight_decay_lambda=0,
        use_dropout=False,
        dropout_ration=0.5,
        use_batchnorm=False,
        *,
        dtype=np.float32,
        rng=None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size_list,
            output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            weight_decay_lambda=weight_decay_lambda,
            use_batchnorm=use_batchnorm,
            use_dropout=use_dropout,
            dropout_ratio=dropout_ration,
            dropout_scale="book",  # the book's Dropout: x (1 - ratio) at test time
            dtype=dtype,
            rng=rng,
        )

    def get_config(self) -> dict:
        """The configuration of the same dlscratch :class:`~dlscratch.nets.MultiLayerNet`."""
        config = super().get_config()
        config["class"] = "MultiLayerNet"
        return config


# -- training -------------------------------------------------------------------------------


def book_optimizer(name: str, params: dict | None = None) -> Optimizer:
    """The optimizer the book's ``Trainer`` builds from ``optimizer`` and ``optimizer_param``.

    ``name`` is the book's ('SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop',
    'Adam'; case does not matter, as in the book) or any other registered name;
    options not given take the book's defaults (``SGD(lr=0.01)``, ``Adam(lr=0.001)``, ...).
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be a name such as 'SGD' or 'Adam', got {name!r}")
    cls = OPTIMIZERS.get_class(name)  # case-insensitive; unknown names list the choices
    params = dict(params or {})
    lr = params.pop("lr", None)
    options = OPTIMIZERS.check_options(name.lower(), params)
    return cls(**options) if lr is None else cls(lr=lr, **options)


class Trainer:
    """The book's ``common/trainer.py``: train ``network`` by mini-batch gradient descent.

    Parameters (the book's)
    -----------------------
    network
        Anything with ``params``, ``gradient(x, t)``, ``loss(x, t)`` and ``accuracy(x, t)``.
    x_train, t_train, x_test, t_test : arrays
    epochs : int
        Passes over the training set; ``max_iter = int(epochs * iter_per_epoch)`` with
        ``iter_per_epoch = max(train_size / mini_batch_size, 1)``.
    mini_batch_size : int
    optimizer : str
        'SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop' or 'Adam' (any case).
    optimizer_param : dict
        The optimizer's arguments, e.g. ``{'lr': 0.01}``.
    evaluate_sample_num_per_epoch : int or None
        Evaluate the accuracies on the first N training and test samples (None: all).
    verbose : bool
        Print each iteration's loss, each epoch's accuracies and the final test accuracy.
    rng : int or numpy.random.Generator, keyword-only
        Where the mini-batches are drawn from (the book uses ``np.random.choice``).

    As in the book, each iteration draws ``mini_batch_size`` indices *with
    replacement*, updates, and appends the loss of that batch *after* the update
    (inference mode) to ``train_loss_list``; the accuracies are measured at the
    first iteration and then at the first iteration of every epoch, so
    ``train_acc_list`` has one entry per epoch (the first after one update).
    """

    def __init__(
        self,
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=20,
        mini_batch_size=100,
        optimizer="SGD",
        optimizer_param=None,
        evaluate_sample_num_per_epoch=None,
        verbose=True,
        *,
        rng=None,
    ) -> None:
        if optimizer_param is None:
            optimizer_param = {"lr": 0.01}
        self.network = network
        self.verbose = verbose
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        if len(x_train) != len(t_train) or len(x_test) != len(t_test):
            raise ValueError(
                f"x and t must have as many rows: x_train {len(x_train)}, t_train {len(t_train)}, "
                f"x_test {len(x_test)}, t_test {len(t_test)}"
            )
        if len(x_train) == 0:
            raise ValueError("x_train is empty; give the Trainer some training data")
        for name, value in (("epochs", epochs), ("mini_batch_size", mini_batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.epochs = int(epochs)
        self.batch_size = int(mini_batch_size)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = book_optimizer(optimizer, optimizer_param)
        self.rng = np.random.default_rng(rng)

        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def _starts_epoch(self, i: int) -> bool:
        """Whether iteration ``i`` is the first of an epoch (``i % iter_per_epoch == 0``).

        For a whole ``iter_per_epoch`` this is the book's test; otherwise it holds at
        the first iteration past each epoch boundary, so every epoch is measured once.
        """
        per = self.iter_per_epoch
        return i == 0 or math.floor(i / per) > math.floor((i - 1) / per)

    def train_step(self) -> None:
        """One iteration: a random mini-batch, an update, the loss; accuracies once per epoch."""
        batch_mask = self.rng.choice(self.train_size, self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]

        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)

        loss = float(self.network.loss(x_batch, t_batch))
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self._starts_epoch(self.current_iter):
            self.current_epoch += 1
            x_train_sample, t_train_sample = self.x_train, self.t_train
            x_test_sample, t_test_sample = self.x_test, self.t_test
            if self.evaluate_sample_num_per_epoch is not None:
                n = self.evaluate_sample_num_per_epoch
                x_train_sample, t_train_sample = self.x_train[:n], self.t_train[:n]
                x_test_sample, t_test_sample = self.x_test[:n], self.t_test[:n]

            train_acc = self.network.accuracy(x_train_sample, t_train_sample)
            test_acc = self.network.accuracy(x_test_sample, t_test_sample)
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)

            if self.verbose:
                print(
                    "=== epoch:"
                    + str(self.current_epoch)
                    + ", train acc:"
                    + str(train_acc)
                    + ", test acc:"
                    + str(test_acc)
                    + " ==="
                )
        self.current_iter += 1

    def train(self) -> None:
        """Run all ``max_iter`` iterations, then measure the test accuracy on the whole test set."""
        for _ in range(self.max_iter):
            self.train_step()

        test_acc = self.network.accuracy(self.x_test, self.t_test)
        self.final_test_acc = test_acc

        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))


__all__ = [
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "Trainer",
    "book_optimizer",
]
