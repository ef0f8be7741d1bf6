"""A scikit-learn classifier over the library's fully connected network.

``MLPClassifier(hidden_layer_sizes=(100,), random_state=0).fit(X, y)``, then ``predict``,
``predict_proba``, ``score``, ``partial_fit``, ``save`` / ``MLPClassifier.load``. When
scikit-learn (1.6 or later) is installed this is a real scikit-learn estimator
(``Pipeline``, ``GridSearchCV``, ``cross_val_score``, ``clone``, pickling); without it the
class works on its own with the same methods.

The estimator is a front end of :mod:`dlscratch.config`: its parameters become a
:class:`~dlscratch.config.RunConfig` (:meth:`MLPClassifier.run_config`), and the network,
optimizer, early stopping and Trainer come from :func:`~dlscratch.config.build_trainer`.
Its choices are the registries': ``activation`` is any name of
:data:`dlscratch.layers.ACTIVATIONS` and ``solver`` any of :data:`dlscratch.optim.OPTIMIZERS`,
each with its declared options.

Differences from ``sklearn.neural_network.MLPClassifier``: ``max_iter`` counts epochs, and
all of them run unless ``early_stopping`` stops training (``n_iter_no_change`` applies only
then; there is no ``tol``); ``solver`` names an optimizer ('adam', 'sgd', 'momentum', ...,
not 'lbfgs'); ``batchnorm`` and ``dropout`` add the chapter 6 layers; weights start at He's
scale for ReLU-like activations and Xavier's otherwise.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np

from dlscratch.config import RunConfig, RunData, build_trainer
from dlscratch.functions import softmax

__all__ = ["MLPClassifier", "NotFittedError", "THREADS_ENV"]

#: Environment variable giving the BLAS thread count when ``n_threads`` is None.
from dlscratch.backend import THREADS_ENV  # noqa: E402  (defined once, in the backend)

try:  # scikit-learn >= 1.6 (tags and validate_data); without it the class stands alone
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

    class NotFittedError(ValueError, AttributeError):
        """An estimator was used before ``fit`` (as scikit-learn's, both error types)."""


#: scikit-learn's name for the sigmoid.
_ALIASES = {"logistic": "sigmoid"}
#: Activations whose weights start at He's scale (the others at Xavier's).
#: Estimator parameter -> the RunConfig field it sets (validated by that field's Option).
PARAM_FIELDS = {
    "hidden_layer_sizes": "hidden",
    "activation": "activation",
    "solver": "optimizer",
    "learning_rate_init": "lr",
    "alpha": "weight_decay",
    "batch_size": "batch_size",
    "max_iter": "epochs",
    "batchnorm": "batchnorm",
    "dropout": "dropout",
    "n_iter_no_change": "early_stopping",
    "dtype": "dtype",
    "n_threads": "threads",
}
#: scikit-learn's optimizer parameters -> the optimizer option they set (when it has it).
OPTIMIZER_PARAMS = {"momentum": "momentum", "beta_1": "beta1", "beta_2": "beta2"}


class _StandaloneParams:
    """``get_params`` / ``set_params`` / ``repr`` as scikit-learn's, for use without it."""

    @classmethod
    def _get_param_names(cls) -> list:
        import inspect

        sig = inspect.signature(cls.__init__)
        return [n for n in sig.parameters if n != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid}"
                )
        for name, value in params.items():
            setattr(self, name, value)
        return self


_BASES = (ClassifierMixin, BaseEstimator) if HAVE_SKLEARN else (_StandaloneParams,)


class MLPClassifier(*_BASES):
    """Multi-layer perceptron classifier with scikit-learn's interface.

    The constructor stores its arguments unchanged; ``fit`` checks them (through
    :class:`~dlscratch.config.RunConfig`, so the limits are the run configuration's).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Neurons per hidden layer; ``()`` gives softmax regression.
    activation : str, default 'relu'
        A name of :data:`dlscratch.layers.ACTIVATIONS` ('relu', 'sigmoid' or 'logistic',
        'tanh', 'leaky_relu', ...).
    activation_options : dict or None
        Options of the activation, e.g. ``{"alpha": 0.1}`` for 'leaky_relu'.
    solver : str, default 'adam'
        A name of :data:`dlscratch.optim.OPTIMIZERS` ('sgd', 'momentum', 'nesterov',
        'adagrad', 'rmsprop', 'adam', 'adamw', ...).
    learning_rate_init : float > 0 or None, default None
        None: the solver's own default rate (0.001 for Adam, 0.1 for SGD).
    optimizer_options : dict or None
        Options of the solver, e.g. ``{"momentum": 0.5}`` or ``{"weight_decay": 0.01}``.
    momentum, beta_1, beta_2 : float or None
        scikit-learn's names for the options 'momentum', 'beta1', 'beta2'; None leaves the
        solver's default. Setting one the solver does not have is an error.
    alpha : float >= 0, default 0.0
        L2 penalty ``0.5 * alpha * sum(W**2)`` in the loss (the book's weight decay).
    batch_size : int >= 1 or 'auto'
        'auto': ``min(100, n_samples)``. A larger int than the data is clipped with a warning.
    max_iter : int >= 1
        Epochs (shuffled passes over the training data) per ``fit``.
    batchnorm : bool
        Batch normalisation after every hidden Affine layer.
    dropout : float in [0, 1)
        Dropout ratio after every hidden activation (0: none).
    early_stopping : bool
        Hold out ``validation_fraction`` of the data (stratified); stop when validation
        accuracy has not improved for ``n_iter_no_change`` epochs and keep the best weights.
    validation_fraction : float in (0, 1)
    n_iter_no_change : int >= 1
    warm_start : bool
        ``fit`` continues from the weights (and optimizer state) of the previous fit.
    random_state : None, int, numpy.random.Generator or RandomState
        Seed of the weights, validation split, shuffling and dropout masks. An int makes
        every ``fit`` identical; a generator is drawn from (successive fits differ); None
        draws fresh entropy.
    dtype : 'float32' or 'float64'
    n_threads : int >= 1 or None
        BLAS threads for training; None reads the environment variable
        ``DLSCRATCH_THREADS``, and leaves the threads alone when it is unset.
    verbose : bool
        Print a line per epoch.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        Sorted unique labels seen by ``fit``; ``predict`` returns values of this array.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names, when fitted on a DataFrame with string column names (scikit-learn).
    network_ : MultiLayerNet
        (n, n_features_in_) -> (n, n_classes) scores.
    config_ : RunConfig
        The run configuration the last ``fit`` built from.
    coefs_, intercepts_ : list of ndarray
        The weight matrices and bias vectors of the Affine layers (views of the network's).
    history_ : History
        The last ``fit``'s record (per-step losses, per-epoch metrics).
    loss_curve_ : list of float
        Mean mini-batch training loss (with the L2 penalty) of each epoch, over all fits
        that continued one another (``warm_start``, ``partial_fit``).
    n_iter_ : int
        Epochs run, counted as ``loss_curve_``.
    best_validation_score_ : float or None
        Best validation accuracy (None without early stopping).
    validation_scores_ : list of float or None
        Validation accuracy per epoch (None without early stopping).

    Notes
    -----
    Inputs are used as given (standardise them, e.g. with ``StandardScaler``), except
    ``uint8`` arrays, which are read as pixels and scaled by 1/255 as everywhere in the
    library. Inputs of shape (n, 1, 28, 28) or any (n, ...) are flattened to (n, features).
    """

    _estimator_type = "classifier"  # for scikit-learn < 1.6 and other duck-typing code

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """One line with the parameters that differ from the defaults, in signature order
        (the same with and without scikit-learn, which would sort and wrap them)."""
        import inspect

        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        defaults = type(self)().get_params()
        params = self.get_params()
        changed = [f"{k}={params[k]!r}" for k in names if repr(params[k]) != repr(defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        learning_rate_init=None,
        alpha=0.0,
        batch_size="auto",
        max_iter=20,
        batchnorm=False,
        dropout=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        random_state=None,
        dtype="float32",
        verbose=False,
        warm_start=False,
        momentum=None,
        beta_1=None,
        beta_2=None,
        activation_options=None,
        optimizer_options=None,
        n_threads=None,
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
        self.warm_start = warm_start
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.activation_options = activation_options
        self.optimizer_options = optimizer_options
        self.n_threads = n_threads

    # -- scikit-learn ----------------------------------------------------------------------
    if HAVE_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = False
            tags.input_tags.sparse = False
            tags.classifier_tags.multi_class = True
            tags.classifier_tags.multi_label = False
            tags.target_tags.single_output = True
            tags.target_tags.multi_output = False
            return tags

    # -- parameters ------------------------------------------------------------------------
    def run_config(self, seed: int = 0) -> RunConfig:
        """The :class:`RunConfig` these parameters describe (ValueError naming a bad one)."""
        p = self.get_params()
        fields = {"seed": seed, "val_split": 0.0}
        for param, name in PARAM_FIELDS.items():
            value = p[param]
            if param == "activation" and isinstance(value, str):
                value = _ALIASES.get(value, value)
            elif param == "batch_size" and value == "auto":
                continue
            elif param == "n_iter_no_change":
                _checked(param, name, value)
                value = value if p["early_stopping"] else None
            elif param == "dtype":
                value = _dtype_name(value)
            elif param == "n_threads" and value is None:
                value = _threads_from_env()
            fields[name] = _checked(param, name, value)
        if not isinstance(p["early_stopping"], (bool, np.bool_)):
            raise ValueError(f"early_stopping must be True or False, got {p['early_stopping']!r}")
        if not isinstance(p["warm_start"], (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False, got {p['warm_start']!r}")
        if not isinstance(p["verbose"], (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"verbose must be True or False, got {p['verbose']!r}")
        fraction = p["validation_fraction"]
        real = isinstance(fraction, numbers.Real) and not isinstance(fraction, bool)
        if not (real and 0 < fraction < 1):
            raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}")
        if p["early_stopping"]:
            fields["val_split"] = float(fraction)
        fields["activation_options"] = _options("activation_options", p["activation_options"])
        options = _options("optimizer_options", p["optimizer_options"])
        for param, option in OPTIMIZER_PARAMS.items():
            if p[param] is not None:
                options[option] = p[param]
        fields["optimizer_options"] = options
        try:
            return RunConfig.from_dict(fields)
        except ValueError as exc:  # an option the activation or solver does not have
            raise ValueError(f"{exc} (MLPClassifier parameters: {_describe_options(p)})") from None

    # -- training --------------------------------------------------------------------------
    def fit(self, X, y) -> MLPClassifier:
        """Train on X (n_samples, n_features) and labels y (n_samples,); returns self.

        A new network unless ``warm_start`` and already fitted. Labels may be of any
        sortable kind (ints, strings, ...).
        """
        continuing = bool(self.warm_start) and hasattr(self, "network_")
        return self._fit(X, y, continuing=continuing, classes=None, epochs=None)

    def partial_fit(self, X, y, classes=None) -> MLPClassifier:
        """One epoch over X, y, continuing from the current weights; returns self.

        The first call needs ``classes`` (every label that will ever be seen) unless the
        estimator was fitted before; later calls may pass it again (it must not change).
        Early stopping does not apply.
        """
        if not hasattr(self, "network_"):
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: "
                    "partial_fit(X, y, classes=np.unique(all_labels))"
                )
            return self._fit(X, y, continuing=False, classes=classes, epochs=1)
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={list(np.unique(classes))} differs from the classes of the first "
                f"call, {self.classes_.tolist()}"
            )
        return self._fit(X, y, continuing=True, classes=self.classes_, epochs=1)

    def _fit(self, X, y, *, continuing: bool, classes, epochs):
        from dlscratch.data.split import train_val_split

        cfg = self.run_config(self._draw_seed())
        if epochs is not None:  # partial_fit: one epoch, no early stopping
            cfg = cfg.replace(epochs=epochs, early_stopping=None, val_split=0.0)
        X, y = self._validate(X, y, reset=not continuing, dtype=np.dtype(cfg.dtype))
        if continuing or classes is not None:
            known = self.classes_ if continuing else np.unique(np.asarray(classes))
            classes, t = _encode_labels(y, len(X), known)
        else:
            classes, t = _encode_labels(y, len(X))
        if continuing:
            self._check_same_network(cfg, X.shape[1], classes)
        x_val = t_val = None
        if cfg.early_stopping is not None:
            n_val = int(len(X) * cfg.val_split)
            if not 1 <= n_val < len(X):
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {len(X)} samples "
                    "leaves no validation or no training sample; use more data or another "
                    "fraction"
                )
            # stratified, as scikit-learn does: every class is scored on validation data
            (X, t), (x_val, t_val) = train_val_split(
                X, t, cfg.val_split, rng=cfg.rngs()["split"], stratify=True
            )
        cfg = cfg.replace(batch_size=self._batch_size(len(X)))
        data = RunData.from_arrays(X, t, x_val, t_val, class_names=[str(c) for c in classes])
        network = (
            self.network_
            if continuing
            else cfg.build_network(
                cfg.rngs()["init"], input_shape=(X.shape[1],), n_classes=len(classes)
            )
        )
        trainer = build_trainer(cfg, data, network=network, verbose=bool(self.verbose))
        if continuing:  # keep the optimizer's state (moments, velocities) across fits
            trainer.optimizer = self._optimizer
        history = trainer.fit()
        self._record(cfg, classes, trainer, history, continuing)
        return self

    def _draw_seed(self) -> int:
        """An int seed for the RunConfig from ``random_state`` (never NumPy's global state)."""
        rs = self.random_state
        high = RunConfig.FIELDS["seed"].high
        if rs is None:
            return int(np.random.default_rng().integers(high))
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(high))
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, high, dtype=np.int64))
        if _is_int(rs) and 0 <= rs <= high:
            return int(rs)
        raise ValueError(
            "random_state must be None, an int from 0 to 2**63 - 1 or a numpy random "
            f"generator, got {rs!r}"
        )

    def _batch_size(self, n: int) -> int:
        size = self.batch_size
        if size == "auto":
            return min(RunConfig.FIELDS["batch_size"].default, n)
        if size > n:
            msg = f"batch_size={size} is more than the {n} training samples; using {n}"
            warnings.warn(msg, UserWarning, stacklevel=4)
            return n
        return size

    def _check_same_network(self, cfg: RunConfig, n_features: int, classes) -> None:
        net = self.network_
        same = (
            list(cfg.hidden) == list(net.hidden_size_list)
            and cfg.activation == net.activation
            and np.dtype(cfg.dtype) == np.dtype(net.dtype)
            and cfg.optimizer == getattr(self, "config_", cfg).optimizer
        )
        if not same:
            raise ValueError(
                "warm_start and partial_fit continue the fitted network, but hidden_layer_sizes, "
                "activation, dtype or solver changed; set warm_start=False to start afresh"
            )
        if not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"y has labels {classes.tolist()}, the fitted estimator {self.classes_.tolist()}; "
                "set warm_start=False to start afresh"
            )

    def _record(self, cfg, classes, trainer, history, continuing: bool) -> None:
        self.classes_ = classes
        self.network_, self._optimizer, self.config_ = trainer.network, trainer.optimizer, cfg
        self.history_ = history
        losses = [float(v) for v in history.column("batch_loss")]
        val = list(history.val_acc) if cfg.early_stopping is not None else None
        if continuing:
            self.loss_curve_ = [*self.loss_curve_, *losses]
            if val is not None:
                self.validation_scores_ = [*(self.validation_scores_ or []), *val]
            else:
                self.validation_scores_ = self.validation_scores_
        else:
            self.loss_curve_, self.validation_scores_ = losses, val
        scores = self.validation_scores_
        self.best_validation_score_ = max(scores) if scores else None
        self.n_iter_ = len(self.loss_curve_)

    # -- fitted attributes -----------------------------------------------------------------
    @property
    def coefs_(self) -> list:
        """Weight matrices of the Affine layers, input to output (views)."""
        return self._affine("W")

    @property
    def intercepts_(self) -> list:
        """Bias vectors of the Affine layers, input to output (views)."""
        return self._affine("b")

    def _affine(self, kind: str) -> list:
        if "network_" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} is not fitted: no {kind} yet")
        params = self.network_.params
        n = sum(1 for name in params if name.startswith("W"))
        return [params[f"{kind}{i}"] for i in range(1, n + 1)]

    # -- input -----------------------------------------------------------------------------
    def _validate(self, X, y=None, *, reset: bool, dtype: np.dtype, fitting: bool = True):
        """X as (n, features) of ``dtype`` (uint8 kept); y checked as 1-D labels."""
        original = X
        X = _check_X(X, dtype)
        if fitting:
            y = _check_y(y, len(X))
        if HAVE_SKLEARN:  # n_features_in_, feature_names_in_ and scikit-learn's own checks
            # a DataFrame goes in as it is, so that its column names are recorded and checked
            seen = original if hasattr(original, "columns") else X
            if not fitting:
                validate_data(self, seen, reset=reset, dtype=None)
            else:
                validate_data(self, seen, y, reset=reset, dtype=None)
                check_classification_targets(y)
                y = np.asarray(y).reshape(-1)
        elif reset:
            self.n_features_in_ = X.shape[1]
        if not reset and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return (X, y) if fitting else X

    # -- prediction ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if "network_" not in self.__dict__:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _scores(self, X) -> np.ndarray:
        from dlscratch.training.metrics import predict_scores

        self._check_fitted()
        X = self._validate(X, reset=False, dtype=np.dtype(self.network_.dtype), fitting=False)
        return predict_scores(self.network_, X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), float64; columns follow ``classes_``."""
        return softmax(self._scores(X).astype(np.float64))

    def predict_log_proba(self, X) -> np.ndarray:
        """Natural log of :meth:`predict_proba` (computed stably from the scores)."""
        s = self._scores(X).astype(np.float64)
        s -= s.max(axis=1, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=1, keepdims=True))

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

        The metadata holds the parameters (a generator ``random_state`` as None), the
        labels and the per-epoch history (not the per-step losses). The optimizer state is
        not saved: a loaded estimator's ``partial_fit`` starts it afresh.
        """
        from dlscratch.io import save_model

        self._check_fitted()
        if self.classes_.dtype.kind not in "biufU":
            raise ValueError(
                f"labels of dtype {self.classes_.dtype} cannot be saved; use ints or strings"
            )
        params = {**self.get_params(), "dtype": np.dtype(self.network_.dtype).name}
        if not (params["random_state"] is None or _is_int(params["random_state"])):
            params["random_state"] = None  # a generator's state is not a parameter
        meta = {
            "class": "MLPClassifier",
            "params": params,  # tuples and NumPy scalars become JSON lists and numbers
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "history": {**self.history_.to_dict(), "losses": []},  # per-epoch rows only
            "loss_curve": self.loss_curve_,
            "validation_scores": self.validation_scores_,
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
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est.network_ = load_model(path)
        est.classes_ = np.array(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        est.n_features_in_ = est.network_.input_size
        est.config_ = est.run_config()
        est._optimizer = est.config_.build_optimizer()
        est.history_ = History.from_dict(meta["history"])
        est.loss_curve_ = [float(v) for v in meta["loss_curve"]]
        est.validation_scores_ = meta["validation_scores"]
        scores = est.validation_scores_
        est.best_validation_score_ = max(scores) if scores else None
        est.n_iter_ = len(est.loss_curve_)
        return est


# -- helpers -------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _checked(param: str, name: str, value):
    """``value`` validated as RunConfig field ``name``; the error names ``param``."""
    try:
        return getattr(RunConfig.from_dict({name: value}), name)
    except ValueError as exc:
        message = str(exc)
        if message.startswith(f"{name} must"):
            message = param + message[len(name) :]
        elif param not in message:
            message = f"{param}={value!r}: {message}"
        raise ValueError(message) from None


def _dtype_name(value):
    try:
        return np.dtype(value).name if value is not None else None
    except (TypeError, ValueError):
        return value


def _threads_from_env():
    """``$DLSCRATCH_THREADS`` (checked as the command line checks it), or None when unset:
    a library call leaves the process's threads alone unless asked."""
    from dlscratch.backend import default_threads

    return default_threads() if os.environ.get(THREADS_ENV, "").strip() else None


def _options(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of option names to values or None, got {value!r}")
    return dict(value)


def _describe_options(p: dict) -> str:
    keys = ("activation", "activation_options", "solver", "optimizer_options", *OPTIMIZER_PARAMS)
    return ", ".join(f"{k}={p[k]!r}" for k in keys if p[k] is not None and p[k] != {})


def _check_X(X, dtype: np.dtype) -> np.ndarray:
    """X as (n, features): uint8 kept (scaled per batch later), anything else as ``dtype``."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError("X is a sparse matrix, which is not supported; pass X.toarray()")
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {X.shape}. Reshape your data: "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"X is empty: 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if math.prod(X.shape[1:]) == 0:
        raise ValueError(
            f"X is empty: 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    X = X.reshape(len(X), -1)
    if X.dtype == np.uint8:
        return X
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if X.dtype.kind == "O":
        X = X.astype(np.float64)  # TypeError for things that are not numbers
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers (int, float or uint8 pixels), got dtype {X.dtype}")
    with np.errstate(over="ignore"):
        converted = X.astype(dtype, copy=False)
    if not np.isfinite(converted).all():
        too_large = np.isfinite(X).all()
        what = f"values too large for {dtype}" if too_large else "NaN or infinity"
        raise ValueError(f"X contains {what}; clean or rescale the data")
    return converted


def _check_y(y, n: int):
    """y as given, after the checks scikit-learn does not make (shape, count)."""
    if y is None:
        raise ValueError(
            "MLPClassifier requires y to be passed, but the target y is None: fit(X, y) "
            "needs the labels"
        )
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] != 1 or arr.ndim > 2 or arr.ndim == 0:
        raise ValueError(
            f"y must be 1-D labels (n_samples,), got shape {arr.shape}; "
            "for one-hot targets pass y.argmax(axis=1)"
        )
    if len(arr) != n:
        raise ValueError(f"X has {n} samples but y has {len(arr)} labels")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("y contains NaN or infinity")
    if arr.ndim == 2 and not HAVE_SKLEARN:
        arr = arr.ravel()  # scikit-learn warns about a column vector, then ravels it
    return arr if not HAVE_SKLEARN else y


def _encode_labels(y, n: int, classes=None):
    """(classes_, indices): sorted unique labels and each sample's index into them."""
    y = np.asarray(y).reshape(n)
    try:
        found, t = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"labels in y cannot be sorted ({exc}); use ints or strings") from exc
    if classes is None:
        if len(found) < 2:
            raise ValueError(
                f"y has only one class ({found.tolist()[0]!r}); a classifier needs at least 2"
            )
        return found, t.reshape(-1).astype(np.intp)
    classes = np.asarray(classes)
    if len(classes) < 2:
        raise ValueError(f"classes has {len(classes)} label(s); a classifier needs at least 2")
    unknown = np.setdiff1d(found, classes)
    if len(unknown):
        raise ValueError(
            f"y has labels {unknown.tolist()} that are not in classes {classes.tolist()}"
        )
    return classes, np.searchsorted(classes, y).astype(np.intp)
