"""A scikit-learn-style classifier over :class:`MultiLayerNet` and the :class:`Trainer`.

For people who know ``sklearn.neural_network.MLPClassifier`` (scikit-learn is not needed):
``MLPClassifier(hidden_layer_sizes=(100,), random_state=0).fit(X, y)``, then ``predict``,
``predict_proba``, ``score``, ``save`` / ``MLPClassifier.load``. Differences: ``max_iter``
counts epochs and all of them run unless ``early_stopping`` stops training
(``n_iter_no_change`` applies only then); ``solver`` is any optimizer of
:data:`dlscratch.optim.OPTIMIZERS`; ``batchnorm`` and ``dropout`` add the chapter 6
layers; weights start at He's scale for ReLU and Xavier's otherwise.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings

import numpy as np

from dlscratch.functions import softmax
from dlscratch.layers import ACTIVATIONS
from dlscratch.optim import OPTIMIZERS

__all__ = ["MLPClassifier", "NotFittedError"]

_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name for the sigmoid


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (as scikit-learn's, both error types)."""


class MLPClassifier:
    """Multi-layer perceptron classifier with scikit-learn's interface.

    The constructor stores its arguments unchanged; :meth:`fit` checks them.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Neurons per hidden layer; ``()`` gives softmax regression.
    activation : {'relu', 'sigmoid' (or 'logistic'), 'tanh'}
    solver : {'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam'}
    learning_rate_init : float > 0
    alpha : float >= 0
        L2 penalty ``0.5 * alpha * sum(W**2)`` (the network's ``weight_decay_lambda``).
    batch_size : int >= 1
        Clipped (with a warning) to the number of training samples.
    max_iter : int >= 1
        Epochs (shuffled passes over the training data).
    batchnorm : bool
        Batch normalisation after every hidden Affine layer.
    dropout : float in [0, 1)
        Dropout ratio after every hidden activation (0: none).
    early_stopping : bool
        Hold out ``validation_fraction`` of the data; stop when validation accuracy has
        not improved for ``n_iter_no_change`` epochs and keep the best epoch's weights.
    validation_fraction : float in (0, 1)
    n_iter_no_change : int >= 1
    random_state : None, int or numpy.random.Generator
        Initial weights, validation split, shuffling and dropout masks. An int makes
        every ``fit`` identical; a Generator is consumed (successive fits differ).
    dtype : 'float32' or 'float64'
    verbose : bool
        Print a line per epoch.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        Sorted unique labels seen by ``fit``; ``predict`` returns values of this array.
    n_features_in_ : int
    network_ : MultiLayerNet
        (n, n_features_in_) -> (n, n_classes) scores.
    history_ : History
        The Trainer's record (per-step losses, per-epoch metrics).
    loss_curve_ : list of float
        Mean mini-batch training loss (with the L2 penalty) of each epoch.
    n_iter_ : int
        Epochs run.
    best_validation_score_ : float or None
        Best validation accuracy (None without early stopping).
    validation_scores_ : list of float or None
        Validation accuracy per epoch (None without early stopping).

    Notes
    -----
    ``uint8`` inputs are read as pixels and scaled by 1/255, as everywhere in the
    library (the Trainer converts one batch at a time); other numbers are used as given.
    Inputs of shape (n, 1, 28, 28) or any (n, ...) are flattened to (n, features).
    """

    _estimator_type = "classifier"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        learning_rate_init=0.001,
        alpha=0.0,
        batch_size=100,
        max_iter=20,
        batchnorm=False,
        dropout=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        random_state=None,
        dtype="float32",
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.batchnorm = batchnorm
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose

    # -- parameters ------------------------------------------------------------------------
    @classmethod
    def _defaults(cls) -> dict:
        sig = inspect.signature(cls.__init__)
        return {n: p.default for n, p in sig.parameters.items() if n != "self"}

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments as currently set: ``MLPClassifier(**p)`` is a clone."""
        return {name: getattr(self, name) for name in self._defaults()}

    def set_params(self, **params) -> MLPClassifier:
        """Set constructor arguments by name (checked by the next ``fit``); returns self."""
        valid = list(self._defaults())
        unknown = [name for name in params if name not in valid]
        if unknown:
            raise ValueError(
                f"Invalid parameter {unknown[0]!r} for estimator MLPClassifier. "
                f"Valid parameters are: {valid}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = self._defaults()
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if repr(v) != repr(defaults[k])
        ]
        return f"MLPClassifier({', '.join(changed)})"

    def _checked_params(self) -> dict:
        """The parameters validated and normalised (ValueError naming the bad one)."""
        p = self.get_params()
        sizes = p["hidden_layer_sizes"]
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else sizes
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(_is_int(s) and s >= 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a positive int or a tuple of positive ints, "
                f"got {p['hidden_layer_sizes']!r}"
            )
        p["hidden_layer_sizes"] = tuple(int(s) for s in sizes)
        _choice(p, "activation", [*ACTIVATIONS, *_ALIASES])
        p["activation"] = _ALIASES.get(p["activation"], p["activation"])
        _choice(p, "solver", OPTIMIZERS)
        _number(p, "learning_rate_init", "> 0", lambda v: v > 0)
        _number(p, "alpha", ">= 0", lambda v: v >= 0)
        _number(p, "dropout", "in [0, 1)", lambda v: 0 <= v < 1)
        _number(p, "validation_fraction", "in (0, 1)", lambda v: 0 < v < 1)
        for name in ("batch_size", "max_iter", "n_iter_no_change"):
            if not (_is_int(p[name]) and p[name] >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {p[name]!r}")
        for name in ("batchnorm", "early_stopping", "verbose"):
            if not isinstance(p[name], (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {p[name]!r}")
        rs = p["random_state"]
        if not (rs is None or _is_int(rs) or isinstance(rs, np.random.Generator)):
            raise ValueError(
                f"random_state must be None, an int or a numpy.random.Generator, got {rs!r}"
            )
        try:
            p["dtype"] = None if p["dtype"] is None else np.dtype(p["dtype"]).name
        except (TypeError, ValueError):
            p["dtype"] = None
        if p["dtype"] not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return p

    # -- training --------------------------------------------------------------------------
    def fit(self, X, y) -> MLPClassifier:
        """Train a new network on X (n_samples, n_features) and labels y (n_samples,).

        Returns self. Labels may be of any sortable kind (ints, strings, ...).
        """
        from dlscratch.data.split import train_val_split
        from dlscratch.nets import MultiLayerNet
        from dlscratch.optim import get_optimizer
        from dlscratch.training import EarlyStopping, Trainer

        p = self._checked_params()
        X = _check_X(X, np.dtype(p["dtype"]))
        classes, t = _encode_labels(y, len(X))
        rng = p["random_state"]
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        net_rng, split_rng, shuffle_rng = rng.spawn(3)
        net = MultiLayerNet(
            X.shape[1],
            list(p["hidden_layer_sizes"]),
            len(classes),
            activation=p["activation"],
            weight_init_std="he" if p["activation"] == "relu" else "xavier",
            weight_decay_lambda=float(p["alpha"]),
            use_batchnorm=bool(p["batchnorm"]),
            use_dropout=p["dropout"] > 0,
            dropout_ratio=float(p["dropout"]),
            dtype=p["dtype"],
            rng=net_rng,
        )
        val, stopper = (), None
        if p["early_stopping"]:
            fraction = p["validation_fraction"]
            if not 1 <= int(len(X) * fraction) < len(X):
                raise ValueError(
                    f"validation_fraction={fraction} of {len(X)} samples leaves no validation "
                    "or no training sample; use more data or another fraction"
                )
            # stratified, as scikit-learn does: every class is scored on validation data
            (X, t), val = train_val_split(X, t, fraction, rng=split_rng, stratify=True)
            stopper = EarlyStopping("val_acc", patience=p["n_iter_no_change"])
        size = p["batch_size"]
        if size > len(X):
            msg = f"batch_size={size} is more than the {len(X)} training samples; using {len(X)}"
            warnings.warn(msg, stacklevel=2)
            size = len(X)
        opt = get_optimizer(p["solver"], lr=float(p["learning_rate_init"]))
        loop = {"epochs": p["max_iter"], "rng": shuffle_rng, "verbose": p["verbose"]}
        callbacks = [] if stopper is None else [stopper]
        history = Trainer(net, opt, X, t, *val, batch_size=size, callbacks=callbacks, **loop).fit()
        self.classes_, self.n_features_in_ = classes, X.shape[1]
        self.network_, self.history_ = net, history
        self._set_summary(history, None if stopper is None else stopper.best)
        return self

    def _set_summary(self, history, best_validation_score) -> None:
        self.loss_curve_ = [float(v) for v in history.column("batch_loss")]
        self.n_iter_ = len(history)
        self.best_validation_score_ = best_validation_score
        has_val = best_validation_score is not None
        self.validation_scores_ = list(history.val_acc) if has_val else None

    # -- prediction ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if "network_" not in self.__dict__:
            raise NotFittedError(
                "This MLPClassifier instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )

    def _scores(self, X) -> np.ndarray:
        from dlscratch.training.metrics import predict_scores

        self._check_fitted()
        X = _check_X(X, np.dtype(self.network_.dtype))
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but MLPClassifier is expecting "
                f"{self.n_features_in_} features as input"
            )
        return predict_scores(self.network_, X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), float64; columns follow ``classes_``."""
        return softmax(self._scores(X).astype(np.float64))

    def predict(self, X) -> np.ndarray:
        """Predicted labels (n_samples,), values of ``classes_``."""
        indices = self._scores(X).argmax(axis=1)
        return self.classes_[indices]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of ``predict(X)`` against labels y (n_samples,)."""
        y = np.asarray(y)
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
        predicted = self.predict(X)
        if y.shape != predicted.shape:
            raise ValueError(f"X has {len(predicted)} samples but y has shape {y.shape}")
        return float(np.average(predicted == y, weights=sample_weight))

    # -- files -----------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted estimator to one ``.npz`` model file (+ JSON); return its path.

        The metadata holds the parameters (a Generator ``random_state`` as None), the
        labels and the per-epoch history (not the per-step losses).
        """
        from dlscratch.io import save_model

        self._check_fitted()
        if self.classes_.dtype.kind not in "biufUO":
            raise ValueError(f"labels of dtype {self.classes_.dtype} cannot be saved")
        params = {**self.get_params(), "dtype": np.dtype(self.network_.dtype).name}
        if isinstance(self.random_state, np.random.Generator):
            params["random_state"] = None  # a generator's state is not a parameter
        meta = {
            "class": "MLPClassifier",
            "params": params,  # tuples and NumPy scalars become JSON lists and numbers
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "history": {**self.history_.to_dict(), "losses": []},  # per-epoch rows only
            "best_validation_score": self.best_validation_score_,
        }
        return save_model(path, self.network_, metadata={"estimator": meta})

    @classmethod
    def load(cls, path) -> MLPClassifier:
        """Rebuild an estimator written by :meth:`save` (network, classes, parameters)."""
        from dlscratch.io import load_model, read_metadata
        from dlscratch.training import History

        meta = read_metadata(path).get("user", {}).get("estimator")
        if not isinstance(meta, dict) or meta.get("class") != cls.__name__:
            raise ValueError(
                f"{path} is not a saved {cls.__name__} (write one with {cls.__name__}.save)"
            )
        params = dict(meta["params"])
        if isinstance(params["hidden_layer_sizes"], list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est.network_ = load_model(path)
        dtype = np.dtype(meta["classes_dtype"])
        est.classes_ = np.array(meta["classes"], dtype=dtype)
        est.n_features_in_ = est.network_.input_size
        est.history_ = History.from_dict(meta["history"])
        est._set_summary(est.history_, meta["best_validation_score"])
        return est


# -- helpers -------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _choice(p: dict, name: str, valid) -> None:
    if not (isinstance(p[name], str) and p[name] in valid):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, valid))}; got {p[name]!r}")


def _number(p: dict, name: str, what: str, ok) -> None:
    v = p[name]
    real = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
    if not (real and math.isfinite(v) and ok(v)):
        raise ValueError(f"{name} must be a number {what}, got {v!r}")


def _check_X(X, dtype: np.dtype) -> np.ndarray:
    """X as (n, features): uint8 kept (scaled per batch later), anything else as ``dtype``."""
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {X.shape}; use "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if X.shape[0] == 0 or math.prod(X.shape[1:]) == 0:
        raise ValueError(f"X is empty (shape {X.shape})")
    X = X.reshape(len(X), -1)
    if X.dtype == np.uint8:
        return X
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers (int, float or uint8 pixels), got dtype {X.dtype}")
    with np.errstate(over="ignore"):
        X = X.astype(dtype, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"X contains NaN or infinity (or values too large for {dtype})")
    return X


def _encode_labels(y, n: int):
    """(classes_, indices): sorted unique labels and each sample's index into them."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"y must be 1-D labels (n_samples,), got shape {y.shape}; "
            "for one-hot targets pass y.argmax(axis=1)"
        )
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)} labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    try:
        classes, t = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"labels in y cannot be sorted ({exc}); use ints or strings") from exc
    if len(classes) < 2:
        raise ValueError(
            f"y has only one class ({classes.tolist()[0]!r}); a classifier needs at least 2"
        )
    return classes, t.reshape(-1).astype(np.intp)
