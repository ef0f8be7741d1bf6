"""dlscratch.hpo: search-space distributions, random_search, ranking, failures, files."""

import csv
import json
import math

import numpy as np
import pytest

from dlscratch.hpo import (
    Choice,
    IntUniform,
    LogUniform,
    SearchResult,
    Uniform,
    random_search,
    sample_space,
)
from dlscratch.training import NonFiniteLossError

# -- distributions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: LogUniform(0, 1e-2), ValueError, "0 < low < high"),
        (lambda: LogUniform(-1e-3, 1e-2), ValueError, "no zero or negative"),
        (lambda: LogUniform(1e-2, 1e-6), ValueError, "got low=0.01, high=1e-06"),
        (lambda: LogUniform(1e-3, 1e-3), ValueError, "0 < low < high"),
        (lambda: LogUniform(1e-3, math.inf), ValueError, "high must be finite"),
        (lambda: LogUniform(math.nan, 1.0), ValueError, "low must be finite"),
        (lambda: LogUniform("1e-3", 1.0), TypeError, "low must be a number"),
        (lambda: LogUniform(True, 2.0), TypeError, "low must be a number"),
        (lambda: Uniform(1.0, 1.0), ValueError, "Uniform needs low < high"),
        (lambda: Uniform(0.0, math.nan), ValueError, "high must be finite"),
        (lambda: IntUniform(5, 4), ValueError, "IntUniform needs low <= high"),
        (lambda: IntUniform(1.5, 4), TypeError, "low must be an integer"),
        (lambda: Choice([]), ValueError, "at least one option"),
        (lambda: Choice("sgd"), TypeError, "list or tuple of options"),
        (lambda: Choice(None), TypeError, "list or tuple of options"),
    ],
)
def test_distributions_validate_their_bounds(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_log_uniform_is_uniform_per_decade_and_within_bounds():
    dist = LogUniform(1e-6, 1e-2)
    x = dist.sample(np.random.default_rng(0), size=20000)
    assert x.shape == (20000,) and x.dtype == np.float64
    assert x.min() >= 1e-6 and x.max() <= 1e-2
    counts, _ = np.histogram(np.log10(x), bins=4, range=(-6, -2))
    np.testing.assert_allclose(counts / len(x), 0.25, atol=0.015)
    # The median is the geometric mean of the bounds, not their average.
    assert np.median(x) == pytest.approx(1e-4, rel=0.1)
    # A linear draw would put almost everything in the top decade.
    assert np.mean(x < 1e-3) == pytest.approx(0.75, abs=0.015)


def test_scalar_samples_are_plain_python_values():
    rng = np.random.default_rng(1)
    assert type(LogUniform(1e-3, 1e-1).sample(rng)) is float
    assert type(Uniform(-1, 1).sample(rng)) is float
    assert type(IntUniform(1, 3).sample(rng)) is int
    assert Choice(["sgd", "adam"]).sample(rng) in ("sgd", "adam")
    assert type(Choice(np.array([1, 2, 3])).sample(rng)) is int


def test_uniform_int_uniform_and_choice_cover_their_ranges_evenly():
    rng = np.random.default_rng(2)
    u = Uniform(-2.0, 3.0).sample(rng, size=10000)
    assert u.min() >= -2.0 and u.max() < 3.0 and u.mean() == pytest.approx(0.5, abs=0.05)
    k = IntUniform(1, 4).sample(rng, size=8000)
    assert set(np.unique(k)) == {1, 2, 3, 4}  # both ends included
    np.testing.assert_allclose(np.bincount(k)[1:] / len(k), 0.25, atol=0.02)
    c = Choice(("a", "b")).sample(rng, size=4000)
    assert len(c) == 4000 and c.count("a") / 4000 == pytest.approx(0.5, abs=0.03)
    assert IntUniform(7, 7).sample(rng) == 7


def test_sampling_is_deterministic_for_a_seed():
    space = {
        "lr": LogUniform(1e-6, 1e-2),
        "dropout": Uniform(0.0, 0.5),
        "layers": IntUniform(1, 5),
        "optimizer": Choice(["sgd", "adam"]),
        "epochs": 3,  # fixed values pass through
    }
    a = [sample_space(space, np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert a[0]["epochs"] == 3 and list(a[0]) == list(space)
    assert sample_space(space, 8) != a[0]
    assert LogUniform(1e-6, 1e-2).to_dict() == {"type": "log-uniform", "low": 1e-6, "high": 1e-2}
    assert Uniform(0, 1).to_dict() == {"type": "uniform", "low": 0.0, "high": 1.0}
    assert IntUniform(1, 5).to_dict() == {"type": "int-uniform", "low": 1, "high": 5}
    assert Choice(["sgd", "adam"]).to_dict() == {"type": "choice", "options": ["sgd", "adam"]}


# -- random_search ------------------------------------------------------------------------------


def _peak(params, index):
    """Best near lr = 1e-3; val_acc in (0, 1]."""
    return {"val_acc": 1.0 / (1.0 + (math.log10(params["lr"]) + 3) ** 2), "index_seen": index}


def test_random_search_ranks_best_first_and_calls_back_in_order():
    seen = []
    result = random_search(
        _peak, {"lr": LogUniform(1e-6, 1e-1), "wd": 0.0}, 12, rng=0, callback=seen.append
    )
    assert len(result) == 12 and isinstance(result, SearchResult)
    scores = [t["metrics"]["val_acc"] for t in result.trials]
    assert scores == sorted(scores, reverse=True)
    assert [t["rank"] for t in result.trials] == list(range(1, 13))
    assert sorted(t["index"] for t in result.trials) == list(range(12))
    # The objective got the trial index; the callback saw each trial once, in trial order.
    assert all(t["metrics"]["index_seen"] == t["index"] for t in result.trials)
    assert [t["index"] for t in seen] == list(range(12))
    assert all(t["status"] == "ok" and t["seconds"] >= 0 and t["params"]["wd"] == 0.0 for t in seen)
    assert result.best is result.trials[0] and result.best_score == max(scores)
    assert result.best_params == result.trials[0]["params"]
    # Minimising a loss reverses the order.
    lossy = random_search(
        lambda p, i: {"loss": p["x"]}, {"x": Uniform(0, 1)}, 6, rng=1, score="loss", maximize=False
    )
    losses = [t["metrics"]["loss"] for t in lossy.trials]
    assert losses == sorted(losses)


def test_narrowed_space_spans_the_best_trials_and_a_second_round_does_better():
    space = {
        "lr": LogUniform(1e-6, 1e-1),
        "width": IntUniform(1, 9),
        "opt": Choice(["sgd", "adam", "rmsprop"]),
        "wd": 0.0,
    }

    def objective(params, index):  # best near lr = 1e-3, width 5, adam
        score = -abs(math.log10(params["lr"]) + 3) - abs(params["width"] - 5) / 10
        return {"val_acc": score - (params["opt"] != "adam")}

    first = random_search(objective, space, 40, rng=0)
    narrow = first.narrowed_space(top=5)
    best5 = first.trials[:5]
    lrs = [t["params"]["lr"] for t in best5]
    assert isinstance(narrow["lr"], LogUniform)
    assert narrow["lr"].low == pytest.approx(min(lrs)) and narrow["lr"].high == pytest.approx(
        max(lrs)
    )
    widths = [t["params"]["width"] for t in best5]
    assert (narrow["width"].low, narrow["width"].high) == (min(widths), max(widths))
    assert set(narrow["opt"].options) == {t["params"]["opt"] for t in best5}
    assert narrow["wd"] == 0.0
    assert math.log10(narrow["lr"].high / narrow["lr"].low) < 5  # narrower than the 5 decades
    second = random_search(objective, narrow, 40, rng=1)
    median = lambda r: np.median([t["metrics"]["val_acc"] for t in r.trials])  # noqa: E731
    assert median(second) > median(first)


def test_narrowing_a_single_value_widens_it_and_needs_a_success():
    one = random_search(lambda p, i: {"val_acc": 1.0}, {"lr": LogUniform(1e-4, 1e-2)}, 1, rng=0)
    lr = one.best_params["lr"]
    narrow = one.narrowed_space(top=3)["lr"]
    assert narrow.low < lr < narrow.high and narrow.high / narrow.low <= 10**0.2 + 1e-9
    failed = random_search(
        lambda p, i: {"val_acc": math.nan}, {"lr": LogUniform(1e-4, 1e-2)}, 2, rng=0
    )
    with pytest.raises(ValueError, match="no trial succeeded"):
        failed.narrowed_space()
    with pytest.raises(ValueError, match="top must be a positive integer"):
        one.narrowed_space(top=0)


def test_same_seed_same_trials_whatever_the_objective_does():
    space = {"lr": LogUniform(1e-6, 1e-2), "wd": LogUniform(1e-8, 1e-4)}

    def noisy(params, index):  # consumes randomness of its own
        return {"val_acc": float(np.random.default_rng().random())}

    a = random_search(_peak_on("lr"), space, 5, rng=np.random.default_rng(3))
    b = random_search(noisy, space, 5, rng=3)
    c = random_search(_peak_on("lr"), space, 5, rng=3)
    params = {t["index"]: t["params"] for t in a.trials}
    assert params == {t["index"]: t["params"] for t in b.trials}
    assert [t["params"] for t in a.trials] == [t["params"] for t in c.trials]
    assert random_search(noisy, space, 5, rng=4).trials[0]["params"] not in params.values()


def _peak_on(name):
    return lambda p, i: _peak({"lr": p[name]}, i)


def test_failed_trials_are_ranked_last_and_do_not_stop_the_search():
    def objective(params, index):
        if index in (1, 4):
            raise NonFiniteLossError(step=3, epoch=1, loss=float("nan"), lr=params["x"])
        if index == 2:
            return {"val_acc": float("nan")}
        return {"val_acc": params["x"]}

    calls = []
    result = random_search(
        objective, {"x": Uniform(0, 1)}, 6, rng=0, callback=lambda t: calls.append(t["status"])
    )
    assert calls == ["ok", "failed", "failed", "ok", "failed", "ok"]
    assert [t["status"] for t in result.trials] == ["ok"] * 3 + ["failed"] * 3
    assert [t["index"] for t in result.trials[3:]] == [1, 2, 4]  # failures in trial order
    assert result.n_failed == 3 and result.best["status"] == "ok"
    assert "became nan at step 3" in result.trials[3]["error"] and result.trials[3]["metrics"] == {}
    assert result.trials[4]["error"] == "val_acc is nan"
    assert result.trials[0]["error"] is None

    def always_diverges(params, index):
        raise NonFiniteLossError(step=1, epoch=1, loss=float("inf"))

    none = random_search(always_diverges, {"x": Uniform(0, 1)}, 2, rng=0)
    assert none.best is None and none.best_params is None and none.n_failed == 2
    assert "2 failed, none succeeded" in repr(none)


def test_other_errors_and_misuse_are_reported():
    def broken(params, index):
        raise RuntimeError("bug in the objective")

    with pytest.raises(RuntimeError, match="bug in the objective"):
        random_search(broken, {"x": Uniform(0, 1)}, 2, rng=0)
    with pytest.raises(ValueError, match="no 'val_acc'.*'acc'"):
        random_search(lambda p, i: {"acc": 1.0}, {"x": Uniform(0, 1)}, 1, rng=0)
    with pytest.raises(TypeError, match="must return a dict"):
        random_search(lambda p, i: 0.5, {"x": Uniform(0, 1)}, 1, rng=0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_trials must be an integer >= 1"):
            random_search(_peak, {"lr": LogUniform(1e-3, 1e-1)}, bad)
    with pytest.raises(TypeError, match="space must be a dict"):
        random_search(_peak, [("lr", LogUniform(1e-3, 1e-1))], 1)
    with pytest.raises(TypeError, match="callback must be callable"):
        random_search(_peak, {"lr": LogUniform(1e-3, 1e-1)}, 1, callback=3)


# -- files --------------------------------------------------------------------------------------


def test_csv_and_json_are_written_ranked_and_parse(tmp_path):
    def objective(params, index):
        if index == 0:
            return {"val_acc": float("nan"), "lr": 0.5}
        return {"val_acc": params["lr"] * 10, "lr": 0.5, "train_acc": np.float32(0.25)}

    space = {"lr": LogUniform(1e-3, 1e-1), "optimizer": Choice(["sgd", "adam"]), "epochs": 2}
    result = random_search(objective, space, 4, rng=5)
    assert result.to_csv(tmp_path / "r.csv") == tmp_path / "r.csv"
    result.to_json(tmp_path / "r.json", extra={"seed": 5, "config": {"epochs": 2}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]  # no temp files left

    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "rank",
        "trial",
        "status",
        "lr",
        "optimizer",
        "epochs",
        "val_acc",
        "metric_lr",  # a metric named like a parameter is renamed
        "train_acc",
        "seconds",
        "error",
    ]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["trial"] == "0" and rows[-1]["status"] == "failed"
    assert rows[-1]["error"] == "val_acc is nan" and rows[-1]["train_acc"] == ""
    ok_rows = rows[:3]
    assert [float(r["val_acc"]) for r in ok_rows] == sorted(
        (float(r["val_acc"]) for r in ok_rows), reverse=True
    )
    assert all(float(r["val_acc"]) == pytest.approx(10 * float(r["lr"])) for r in ok_rows)

    data = json.loads((tmp_path / "r.json").read_text())
    assert data["seed"] == 5 and data["config"] == {"epochs": 2}
    assert data["score"] == "val_acc" and data["maximize"] is True
    assert data["space"]["lr"] == {"type": "log-uniform", "low": 1e-3, "high": 1e-1}
    assert data["space"]["optimizer"] == {"type": "choice", "options": ["sgd", "adam"]}
    assert data["space"]["epochs"] == {"type": "fixed", "value": 2}
    assert data["n_trials"] == 4 and data["n_failed"] == 1
    assert [t["rank"] for t in data["trials"]] == [1, 2, 3, 4]
    assert data["best"] == data["trials"][0]
    assert data["trials"][-1]["metrics"]["val_acc"] is None  # NaN is written as null
    assert set(data["trials"][0]) == {
        "index",
        "rank",
        "params",
        "metrics",
        "status",
        "error",
        "seconds",
    }


def test_plot_search_draws_every_searched_parameter(tmp_path):
    from dlscratch.plotting import plot_search

    def objective(params, index):
        if index == 3:
            raise NonFiniteLossError(step=1, epoch=1, loss=float("nan"))
        return _peak(params, index)

    space = {"lr": LogUniform(1e-6, 1e-1), "wd": LogUniform(1e-8, 1e-4), "opt": Choice(["a"])}
    result = random_search(objective, space, 6, rng=0)
    fig = plot_search(result, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = [ax for ax in fig.axes if ax.get_xlabel()]
    assert [ax.get_xscale() for ax in panels] == ["log", "log"]
    assert "learning rate" in panels[0].get_xlabel()
