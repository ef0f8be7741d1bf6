"""dlscratch.estimator.MLPClassifier: the scikit-learn-style interface over MultiLayerNet."""

import json

import numpy as np
import pytest

from dlscratch.estimator import MLPClassifier, NotFittedError
from dlscratch.nets import MultiLayerNet
from dlscratch.training import History
from shared_data import needs_mnist


def blobs(n_per_class=100, n_features=5, labels=(0, 1, 2), seed=0, spread=0.7):
    """Well-separated Gaussian clusters: X (n, n_features) float64, y (n,) from ``labels``."""
    rng = np.random.default_rng(seed)
    centers = 4.0 * rng.standard_normal((len(labels), n_features))
    X = np.concatenate(
        [c + spread * rng.standard_normal((n_per_class, n_features)) for c in centers]
    )
    y = np.repeat(np.asarray(labels), n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


FAST = {"hidden_layer_sizes": (16,), "learning_rate_init": 0.01, "max_iter": 15, "batch_size": 20}


@pytest.fixture(scope="module")
def animals():
    """A fitted classifier on string labels, with its training data."""
    X, y = blobs(labels=("cat", "dog", "bird"), seed=1)
    return MLPClassifier(**FAST, random_state=0).fit(X, y), X, y


# -- learning ---------------------------------------------------------------------------------


def test_learns_a_separable_problem_and_sets_the_fitted_attributes():
    X, y = blobs(n_per_class=150, seed=2)
    est = MLPClassifier(**FAST, random_state=0)
    assert est.fit(X[:300], y[:300]) is est
    assert est.score(X[300:], y[300:]) >= 0.97
    assert est.classes_.tolist() == [0, 1, 2] and est.n_features_in_ == 5
    assert isinstance(est.network_, MultiLayerNet) and isinstance(est.history_, History)
    assert est.network_.hidden_size_list == [16] and est.network_.output_size == 3
    assert est.n_iter_ == 15 == len(est.loss_curve_) == len(est.history_)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]
    assert est.best_validation_score_ is None and est.validation_scores_ is None


def test_string_labels_come_back_from_predict(animals):
    est, X, y = animals
    assert est.classes_.tolist() == ["bird", "cat", "dog"]
    predicted = est.predict(X)
    assert predicted.dtype.kind == "U" and set(predicted) <= {"bird", "cat", "dog"}
    assert np.mean(predicted == y) >= 0.97 and est.score(X, list(y)) >= 0.97


def test_predict_proba_rows_sum_to_one_and_argmax_matches_predict(animals):
    est, X, _ = animals
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(est.classes_[proba.argmax(axis=1)], est.predict(X))


def test_save_and_load_round_trip_string_labels(animals, tmp_path):
    est, X, _ = animals
    path = est.save(tmp_path / "animals")
    assert path.name == "animals.npz" and (tmp_path / "animals.json").is_file()
    meta = json.loads((tmp_path / "animals.json").read_text())["user"]["estimator"]
    assert meta["classes"] == ["bird", "cat", "dog"]
    loaded = MLPClassifier.load(path)
    assert loaded.classes_.dtype == est.classes_.dtype
    assert loaded.classes_.tolist() == ["bird", "cat", "dog"]
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert np.array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert loaded.get_params() == est.get_params() and repr(loaded) == repr(est)
    assert loaded.n_features_in_ == 5 and loaded.n_iter_ == est.n_iter_
    assert loaded.loss_curve_ == est.loss_curve_


def test_save_and_load_keep_integer_labels_and_early_stopping_results(tmp_path):
    X, y = blobs(labels=(3, 7, 10), seed=3)
    options = {**FAST, "activation": "logistic", "dtype": "float64", "hidden_layer_sizes": 32}
    est = MLPClassifier(**options, early_stopping=True, random_state=0).fit(X, y)
    loaded = MLPClassifier.load(est.save(tmp_path / "ints.npz"))
    assert loaded.get_params() == est.get_params()  # 'logistic' and the int stay as given
    assert loaded.network_.dtype == np.float64 and loaded.network_.hidden_size_list == [32]
    assert loaded.classes_.dtype == est.classes_.dtype and loaded.classes_.tolist() == [3, 7, 10]
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert loaded.best_validation_score_ == est.best_validation_score_
    assert loaded.validation_scores_ == est.validation_scores_


def test_load_refuses_a_model_file_that_is_not_an_estimator(tmp_path):
    from dlscratch.io import save_model

    path = save_model(tmp_path / "net.npz", MultiLayerNet(4, [3], 2, rng=0))
    with pytest.raises(ValueError, match="is not a saved MLPClassifier"):
        MLPClassifier.load(path)


def test_a_fixed_random_state_gives_identical_fits():
    X, y = blobs(seed=4)
    options = {**FAST, "dropout": 0.2, "batchnorm": True, "early_stopping": True}
    first = MLPClassifier(**options, random_state=7).fit(X, y)
    second = MLPClassifier(**options, random_state=7).fit(X, y)
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))
    assert np.array_equal(first.predict(X), second.predict(X))
    assert first.loss_curve_ == second.loss_curve_
    other = MLPClassifier(**options, random_state=8).fit(X, y)
    assert not np.array_equal(other.network_.params["W1"], first.network_.params["W1"])


def test_uint8_pixels_are_scaled_like_the_rest_of_the_library():
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(200, 1, 2, 2), dtype=np.uint8)  # images (n, 1, h, w)
    y = (pixels.reshape(200, -1).astype(int).sum(axis=1) > 510).astype(int)
    as_uint8 = MLPClassifier(**FAST, random_state=0).fit(pixels, y)
    floats = pixels.reshape(200, 4).astype(np.float32) / np.float32(255)
    as_float = MLPClassifier(**FAST, random_state=0).fit(floats, y)
    assert as_uint8.n_features_in_ == 4
    assert np.array_equal(as_uint8.predict_proba(pixels), as_float.predict_proba(floats))


def test_early_stopping_stops_on_a_plateau_and_keeps_the_best_weights(monkeypatch):
    import dlscratch.data.split as split

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 10))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    flip = rng.random(400) < 0.25  # label noise: validation accuracy soon stops improving
    y[flip] = 1 - y[flip]
    held_out = []

    def recording_split(*args, **kwargs):
        parts = real_split(*args, **kwargs)
        held_out.append(parts[1])
        return parts

    real_split = split.train_val_split
    monkeypatch.setattr(split, "train_val_split", recording_split)
    options = {"hidden_layer_sizes": (200,), "learning_rate_init": 0.01, "batch_size": 20}
    est = MLPClassifier(
        **options,
        max_iter=100,
        early_stopping=True,
        validation_fraction=0.25,
        dtype="float64",
        random_state=0,  # fixed, so the last epoch is known to score below the best one
    )
    est.fit(X, y)
    assert est.n_iter_ < 100 and est.history_.stopped_early
    best = est.best_validation_score_
    assert best == max(est.validation_scores_) and len(est.validation_scores_) == est.n_iter_
    assert est.n_iter_ == est.history_.best_epoch + 5
    assert est.validation_scores_[-1] < best  # the last epoch was worse ...
    (x_val, t_val) = held_out[0]
    assert len(x_val) == 100
    assert est.network_.accuracy(x_val, t_val) == best  # ... and its weights were replaced


def test_batch_size_larger_than_the_data_is_clipped_with_a_warning():
    X, y = blobs(n_per_class=10, seed=6)
    with pytest.warns(UserWarning, match="batch_size=100 is more than the 30 training samples"):
        est = MLPClassifier(batch_size=100, max_iter=2, random_state=0).fit(X, y)
    assert len(est.history_.losses) == 2  # one full batch per epoch


# -- parameters -------------------------------------------------------------------------------


def test_get_params_set_params_and_a_clone_round_trip():
    est = MLPClassifier(hidden_layer_sizes=(8, 4), alpha=1e-4, solver="sgd", random_state=3)
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (8, 4) and params["verbose"] is False
    clone = MLPClassifier(**params)
    assert clone.get_params() == params and clone is not est and repr(clone) == repr(est)
    assert est.set_params(max_iter=3, activation="tanh") is est
    assert est.max_iter == 3 and est.get_params()["activation"] == "tanh"
    with pytest.raises(ValueError, match=r"Invalid parameter 'epochs'(.|\n)*'max_iter'"):
        est.set_params(epochs=5, max_iter=4)
    assert est.max_iter == 3  # nothing was set
    X, y = blobs(seed=7)
    fitted = MLPClassifier(**FAST, random_state=1).fit(X, y)
    refit = MLPClassifier(**fitted.get_params()).fit(X, y)
    assert np.array_equal(refit.predict_proba(X), fitted.predict_proba(X))


def test_repr_shows_only_the_changed_parameters():
    est = MLPClassifier(hidden_layer_sizes=(8, 4), alpha=1e-4, solver="sgd", random_state=3)
    assert repr(est) == (
        "MLPClassifier(hidden_layer_sizes=(8, 4), solver='sgd', alpha=0.0001, random_state=3)"
    )
    assert repr(MLPClassifier()) == "MLPClassifier()"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_layer_sizes": (10, 0)}, r"hidden_layer_sizes=\(10, 0\): hidden layer sizes must"),
        ({"hidden_layer_sizes": "100"}, "hidden_layer_sizes must be a list of layer sizes"),
        ({"activation": "identity"}, "unknown activation 'identity': choose one of relu, "),
        ({"solver": "lbfgs"}, "solver='lbfgs': unknown optimizer 'lbfgs': choose one of sgd, "),
        ({"learning_rate_init": 0}, r"learning_rate_init must be > 0, got 0"),
        ({"learning_rate_init": float("nan")}, "learning_rate_init must be a finite number"),
        ({"alpha": -1e-3}, "alpha must be >= 0, got -0.001"),
        ({"dropout": 1.0}, r"dropout must be >= 0 and < 1, got 1.0"),
        ({"validation_fraction": 1.5}, r"validation_fraction must be a number in \(0, 1\)"),
        ({"batch_size": 0}, "batch_size must be >= 1 and <= 1e\\+06, got 0"),
        ({"max_iter": 2.5}, "max_iter must be a whole number, got 2.5"),
        ({"n_iter_no_change": True}, "n_iter_no_change must be a number, got True"),
        ({"batchnorm": "yes"}, "batchnorm must be true or false, got 'yes'"),
        ({"early_stopping": 1}, "early_stopping must be True or False"),
        ({"warm_start": None}, "warm_start must be True or False"),
        ({"random_state": "seed"}, "random_state must be None, an int from 0 to 2\\*\\*63 - 1"),
        ({"random_state": -1}, "random_state must be None, an int from 0"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64, got 'float16'"),
        ({"dtype": "pixels"}, "dtype must be one of float32, float64, got 'pixels'"),
        ({"dtype": None}, "dtype must be one of float32, float64, got None"),
        ({"n_threads": 0}, "n_threads must be >= 1 and <= 1024, got 0"),
        ({"solver": "sgd", "momentum": 0.9}, "optimizer 'sgd' has no option 'momentum'"),
        ({"beta_1": 1.5}, "adam beta1 must be >= 0 and < 1, got 1.5"),
        ({"activation": "relu", "activation_options": {"alpha": 0.1}}, "has no option 'alpha'"),
        ({"optimizer_options": [("beta1", 0.5)]}, "optimizer_options must be a dict"),
    ],
)
def test_bad_parameters_are_reported_by_fit_not_by_the_constructor(params, message):
    est = MLPClassifier(**params)  # stored unchanged, as scikit-learn does
    assert all(getattr(est, k) is v for k, v in params.items())
    X, y = blobs(n_per_class=10)
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)
    assert not hasattr(est, "classes_")


def test_logistic_is_accepted_as_the_sigmoid():
    X, y = blobs(n_per_class=20)
    est = MLPClassifier(**FAST, activation="logistic", random_state=0).fit(X, y)
    assert est.network_.activation == "sigmoid" and est.activation == "logistic"


# -- bad data ---------------------------------------------------------------------------------

X_OK, Y_OK = blobs(n_per_class=10)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (X_OK, Y_OK[:-1], "X has 30 samples but y has 29 labels"),
        (X_OK, np.zeros(30), r"y has only one class \(0.0\); a classifier needs at least 2"),
        (np.where(np.eye(30, 5) > 0, np.nan, X_OK), Y_OK, "X contains NaN or infinity"),
        (np.full((30, 5), np.inf), Y_OK, "X contains NaN or infinity"),
        (np.full((30, 5), 1e300), Y_OK, "too large for float32"),
        (X_OK[:, 0], Y_OK, r"X must be 2-D \(n_samples, n_features\), got shape \(30,\)"),
        (X_OK.astype(str), Y_OK, "X must hold numbers"),
        (np.zeros((0, 5)), Y_OK[:0], r"X is empty: 0 sample\(s\) \(shape=\(0, 5\)\)"),
        (X_OK, np.eye(3)[Y_OK], r"y must be 1-D labels.*y.argmax\(axis=1\)"),
        (X_OK, np.where(Y_OK == 0, np.nan, Y_OK), "y contains NaN"),
    ],
)
def test_bad_training_data_gets_a_clear_error(X, y, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**FAST).fit(X, y)


def test_early_stopping_needs_enough_samples_for_a_validation_split():
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 8 samples leaves no"):
        MLPClassifier(early_stopping=True).fit(X_OK[:8], Y_OK[:8])


@pytest.mark.filterwarnings("ignore:A column-vector y was passed")  # scikit-learn's warning
def test_a_column_vector_of_labels_is_accepted():
    est = MLPClassifier(**FAST, random_state=0).fit(X_OK, Y_OK[:, None])
    assert est.classes_.tolist() == [0, 1, 2] and est.score(X_OK, Y_OK[:, None]) >= 0.9


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "save"])
def test_using_an_unfitted_estimator_says_to_call_fit(method, tmp_path):
    est = MLPClassifier()
    args = {"score": (X_OK, Y_OK), "save": (tmp_path / "m.npz",)}.get(method, (X_OK,))
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'") as info:
        getattr(est, method)(*args)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert not hasattr(est, "classes_")


def test_prediction_input_is_checked(animals):
    est, X, y = animals
    with pytest.raises(ValueError, match="X has 4 features, but MLPClassifier is expecting 5"):
        est.predict(X[:, :4])
    with pytest.raises(ValueError, match="X contains NaN"):
        est.predict_proba(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="X must be 2-D"):
        est.predict(X[0])
    with pytest.raises(ValueError, match="X has 300 samples but y has shape"):
        est.score(X, y[:10])
    assert est.predict(X[:1]).shape == (1,)


# -- MNIST ------------------------------------------------------------------------------------


@needs_mnist
def test_a_small_mnist_run_from_uint8_images():
    from dlscratch.data import load_mnist

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, flatten=False)
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (1, 28, 28)
    est = MLPClassifier(learning_rate_init=0.003, batch_size=50, max_iter=3, random_state=0)
    est.fit(x_train[:3000], t_train[:3000])  # uint8 (n, 1, 28, 28): scaled and flattened
    assert est.n_features_in_ == 784 and est.classes_.tolist() == list(range(10))
    assert est.score(x_test[:1000], t_test[:1000]) >= 0.85


def test_a_generator_random_state_is_consumed_and_saved_as_none(tmp_path):
    X, y = blobs(n_per_class=20, seed=8)
    est = MLPClassifier(**FAST, random_state=np.random.default_rng(0), dtype=np.float32)
    first = est.fit(X, y).network_.params["W1"].copy()
    assert not np.array_equal(est.fit(X, y).network_.params["W1"], first)
    loaded = MLPClassifier.load(est.save(tmp_path / "gen.npz"))
    assert loaded.random_state is None and loaded.dtype == "float32"


def test_verbose_prints_a_line_per_epoch(capsys):
    X, y = blobs(n_per_class=20, seed=9)
    MLPClassifier(**{**FAST, "max_iter": 3}, verbose=True, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3")


# -- the run configuration, registries and continued training ---------------------------------


def test_parameters_become_a_run_configuration_from_the_registries():
    est = MLPClassifier(
        hidden_layer_sizes=(7, 5),
        activation="leaky_relu",
        activation_options={"alpha": 0.2},
        solver="adamw",
        beta_1=0.8,
        optimizer_options={"weight_decay": 0.05},
        alpha=1e-3,
        max_iter=4,
        n_threads=1,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        dtype="float64",
    )
    cfg = est.run_config(seed=11)
    assert cfg.hidden == (7, 5) and cfg.activation == "leaky_relu" and cfg.weight_init == "he"
    assert cfg.activation_options == {"alpha": 0.2}
    assert cfg.optimizer == "adamw" and cfg.optimizer_options == {
        "weight_decay": 0.05,
        "beta1": 0.8,
    }
    assert cfg.learning_rate == 0.001  # None: AdamW's default rate
    assert (cfg.weight_decay, cfg.epochs, cfg.threads, cfg.seed) == (1e-3, 4, 1, 11)
    assert (cfg.early_stopping, cfg.val_split, cfg.dtype) == (3, 0.2, "float64")
    assert MLPClassifier(activation="tanh").run_config().weight_init == "xavier"
    assert MLPClassifier(solver="sgd").run_config().learning_rate == 0.1


def test_leaky_relu_and_adamw_train_and_the_network_holds_their_options():
    X, y = blobs(seed=12)
    est = MLPClassifier(
        **FAST,
        activation="leaky_relu",
        activation_options={"alpha": 0.2},
        solver="adamw",
        optimizer_options={"weight_decay": 0.01},
        beta_2=0.99,
        random_state=0,
    ).fit(X, y)
    assert est.score(X, y) >= 0.97
    assert est.network_.activation == "leaky_relu"
    assert est.network_.layers["Activation1"].alpha == 0.2
    assert est._optimizer.beta2 == 0.99 and est._optimizer.weight_decay == 0.01
    assert est.config_.optimizer == "adamw"


def test_momentum_is_passed_to_the_momentum_solver():
    X, y = blobs(seed=13)
    slow = MLPClassifier(**FAST, solver="momentum", momentum=0.0, random_state=0).fit(X, y)
    fast = MLPClassifier(**FAST, solver="momentum", momentum=0.9, random_state=0).fit(X, y)
    assert slow._optimizer.momentum == 0.0 and fast._optimizer.momentum == 0.9
    assert fast.loss_curve_[2] < slow.loss_curve_[2]  # the same start, a faster descent


def test_coefs_and_intercepts_are_the_affine_layers():
    est = MLPClassifier(**FAST, random_state=0).fit(*blobs(seed=14))
    assert [w.shape for w in est.coefs_] == [(5, 16), (16, 3)]
    assert [b.shape for b in est.intercepts_] == [(16,), (3,)]
    x = np.ones((1, 5), dtype=np.float32)
    hidden = np.maximum(x @ est.coefs_[0] + est.intercepts_[0], 0)
    scores = hidden @ est.coefs_[1] + est.intercepts_[1]
    assert np.allclose(est.predict_proba(x), np.exp(scores) / np.exp(scores).sum(), atol=1e-6)
    assert not hasattr(MLPClassifier(), "coefs_")


def test_float_inputs_are_used_as_given_not_divided_by_255():
    X, y = blobs(seed=15)
    est = MLPClassifier(**FAST, random_state=0).fit(X * 1000.0, y)  # any range
    first = est.network_.params["W1"]
    scores = est.network_.predict(np.float32(X[:3] * 1000.0))
    assert np.allclose(est.predict_proba(X[:3] * 1000.0).argmax(1), scores.argmax(1))
    assert first.dtype == np.float32


def test_warm_start_continues_and_a_cold_fit_starts_again():
    X, y = blobs(seed=16)
    est = MLPClassifier(**{**FAST, "max_iter": 3}, warm_start=True, random_state=0).fit(X, y)
    weights = est.network_.params["W1"].copy()
    est.fit(X, y)
    assert est.n_iter_ == 6 == len(est.loss_curve_) and len(est.history_) == 3
    assert est.loss_curve_[3] < est.loss_curve_[0]  # continued, not restarted
    six = MLPClassifier(**{**FAST, "max_iter": 6}, random_state=0).fit(X, y)
    assert not np.array_equal(est.network_.params["W1"], weights)
    est.set_params(warm_start=False).fit(X, y)
    assert est.n_iter_ == 3
    assert six.n_iter_ == 6


def test_partial_fit_runs_one_epoch_per_call_and_needs_the_classes_first():
    X, y = blobs(labels=("a", "b", "c"), seed=17)
    est = MLPClassifier(**FAST, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X, y)
    est.partial_fit(X[:100], y[:100], classes=["c", "a", "b"])
    assert est.classes_.tolist() == ["a", "b", "c"] and est.n_iter_ == 1
    for _ in range(9):
        est.partial_fit(X, y)
    assert est.n_iter_ == 10 and est.score(X, y) >= 0.97
    with pytest.raises(ValueError, match=r"y has labels \['d'\] that are not in classes"):
        est.partial_fit(X[:2], np.array(["a", "d"]))
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        est.partial_fit(X, y, classes=["a", "b"])


def test_n_threads_comes_from_the_environment_when_none(monkeypatch):
    monkeypatch.setenv("DLSCRATCH_THREADS", "1")
    assert MLPClassifier().run_config().threads == 1
    assert MLPClassifier(n_threads=2).run_config().threads == 2
    monkeypatch.setenv("DLSCRATCH_THREADS", "many")
    with pytest.raises(ValueError, match="DLSCRATCH_THREADS must be a whole number"):
        MLPClassifier().run_config()
    monkeypatch.setenv("DLSCRATCH_THREADS", "0")
    with pytest.raises(ValueError, match="DLSCRATCH_THREADS must be a whole number >= 1, got .0."):
        MLPClassifier().run_config()
    monkeypatch.delenv("DLSCRATCH_THREADS")
    assert MLPClassifier().run_config().threads is None


def test_pickling_keeps_a_fitted_estimator(animals):
    import pickle

    est, X, _ = animals
    copy = pickle.loads(pickle.dumps(est))
    assert np.array_equal(copy.predict_proba(X), est.predict_proba(X))
    assert copy.get_params() == est.get_params() and copy.classes_.tolist() == [
        "bird",
        "cat",
        "dog",
    ]


def test_importable_and_usable_without_scikit_learn():
    import subprocess
    import sys

    code = """
import sys
sys.modules["sklearn"] = None  # any 'import sklearn...' now raises ImportError
import numpy as np
from dlscratch.estimator import HAVE_SKLEARN, MLPClassifier, NotFittedError
assert not HAVE_SKLEARN
rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(-3, 1, (40, 3)), rng.normal(3, 1, (40, 3))])
y = np.array(["no"] * 40 + ["yes"] * 40)
est = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=10, random_state=0)
score = est.fit(X, y).score(X, y)
assert score >= 0.95 and est.n_features_in_ == 3, score
assert repr(est) == (
    "MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=10, random_state=0)"
)
assert MLPClassifier(**est.get_params()).get_params() == est.get_params()
try:
    est.set_params(epochs=3)
    raise SystemExit("no error")
except ValueError as exc:
    assert "Invalid parameter 'epochs'" in str(exc)
try:
    MLPClassifier().predict(X)
    raise SystemExit("no error")
except NotFittedError as exc:
    assert isinstance(exc, AttributeError) and "not fitted yet" in str(exc)
try:
    est.predict(X[:, :2])
    raise SystemExit("no error")
except ValueError as exc:
    assert "X has 2 features, but MLPClassifier is expecting 3" in str(exc)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
