"""dlscratch.estimator.MLPClassifier inside real scikit-learn (skipped when it is not installed).

scikit-learn's own estimator checks run through ``parametrize_with_checks``: one test per
check. None is expected to fail. Two are skipped by scikit-learn itself:

- ``check_array_api_input``: skipped unless ``SCIPY_ARRAY_API=1``; the estimator computes
  with NumPy (or CuPy through ``device``), not through the array API, so it does not
  declare ``array_api_support``.
- ``check_classifier_data_not_an_array``: needs pandas (not a dependency of the project);
  skipped when pandas is not installed, run when it is.
"""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from dlscratch.estimator import HAVE_SKLEARN, MLPClassifier  # noqa: E402

#: Small and fast, and enough to pass the checks' accuracy bars (0.83 on 3 blobs).
CHECKED = MLPClassifier(
    hidden_layer_sizes=(10,), max_iter=20, learning_rate_init=0.01, batch_size=20, random_state=0
)
#: Checks expected to fail, with the reason (none at present).
EXPECTED_FAILURES: dict[str, str] = {}


@pytest.mark.filterwarnings("ignore:batch_size=20 is more than the")  # checks' tiny data sets
@parametrize_with_checks([CHECKED], expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits (bundled, no download): 1,797 samples of 64 features 0-16."""
    X, y = load_digits(return_X_y=True)
    return X[:900], y[:900], X[900:1300], y[900:1300]


FAST = {"hidden_layer_sizes": (32,), "learning_rate_init": 0.01, "max_iter": 8, "batch_size": 32}


def test_it_is_a_scikit_learn_classifier():
    assert HAVE_SKLEARN
    est = MLPClassifier()
    assert is_classifier(est) and is_classifier(make_pipeline(StandardScaler(), est))
    tags = est.__sklearn_tags__()
    assert tags.estimator_type == "classifier" and tags.classifier_tags.multi_class
    assert not tags.input_tags.allow_nan and not tags.input_tags.sparse


def test_pipeline_with_a_scaler_learns_the_digits(digits):
    X, y, X_test, y_test = digits
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**FAST, random_state=0))])
    assert pipe.fit(X, y) is pipe
    assert pipe.score(X_test, y_test) >= 0.9
    mlp = pipe.named_steps["mlp"]
    assert mlp.n_features_in_ == 64 and mlp.classes_.tolist() == list(range(10))
    assert mlp.n_iter_ == 8 == len(mlp.loss_curve_) and mlp.loss_curve_[-1] < mlp.loss_curve_[0]
    assert [w.shape for w in mlp.coefs_] == [(64, 32), (32, 10)]
    assert [b.shape for b in mlp.intercepts_] == [(32,), (10,)]


def test_make_pipeline_fit_and_predict_proba(digits):
    X, y, X_test, _ = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, random_state=1)).fit(X, y)
    proba = pipe.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(pipe.predict(X_test), proba.argmax(axis=1))
    assert np.allclose(np.exp(pipe.predict_log_proba(X_test)), proba)


def test_cross_val_score_gives_one_good_score_per_fold(digits):
    X, y, _, _ = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.8 and scores.mean() >= 0.85


def test_grid_search_over_two_by_two_parameters(digits):
    X, y, X_test, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, random_state=0))
    grid = {
        "mlpclassifier__hidden_layer_sizes": [(4,), (32,)],
        "mlpclassifier__learning_rate_init": [1e-5, 1e-2],
    }
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    # a tiny rate barely moves the weights in 8 epochs; 4 neurons are too few for 10 digits
    assert search.best_params_ == {
        "mlpclassifier__hidden_layer_sizes": (32,),
        "mlpclassifier__learning_rate_init": 1e-2,
    }
    assert search.score(X_test, y_test) >= 0.9


def test_clone_copies_parameters_not_the_fit(digits):
    X, y, _, _ = digits
    est = MLPClassifier(**FAST, solver="adamw", beta_1=0.8, random_state=3).fit(X / 16, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "classes_")
    copy.fit(X / 16, y)
    assert np.array_equal(copy.predict_proba(X), est.predict_proba(X))  # same seed, same fit


def test_pickling_round_trip_predicts_the_same(digits):
    X, y, X_test, _ = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, random_state=0)).fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    assert np.array_equal(again.predict_proba(X_test), pipe.predict_proba(X_test))
    again.steps[-1][1].set_params(warm_start=True).fit(X, y)  # still trainable
    assert again.steps[-1][1].n_iter_ == 16


def test_string_labels_through_a_pipeline_and_cross_validation(digits):
    X, y, X_test, y_test = digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, random_state=0))
    pipe.fit(X, names[y])
    assert sorted(pipe.classes_) == sorted(names) and pipe.predict(X_test).dtype.kind == "U"
    assert pipe.score(X_test, names[y_test]) >= 0.9
    assert cross_val_score(pipe, X, names[y], cv=2).min() >= 0.8


def test_early_stopping_and_partial_fit_attributes(digits):
    X, y, X_test, y_test = digits
    X, X_test = X / 16, X_test / 16
    est = MLPClassifier(
        **{**FAST, "max_iter": 30}, early_stopping=True, n_iter_no_change=3, random_state=0
    ).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ <= 30
    assert est.best_validation_score_ == max(est.validation_scores_)
    online = MLPClassifier(**FAST, random_state=0)
    for start in range(0, len(X), 300):
        online.partial_fit(X[start : start + 300], y[start : start + 300], classes=np.arange(10))
    assert online.n_iter_ == 3 and online.score(X_test, y_test) >= 0.6
