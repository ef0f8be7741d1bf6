"""dlscratch.hpo: search spaces, trials on Optuna in this process, failures, pruning, resume."""

import math

import optuna
import pytest

from dlscratch.config import RunConfig
from dlscratch.hpo import (
    DEFAULT_SPACE,
    SearchSpace,
    make_pruner,
    make_sampler,
    save_results,
    search,
    trials_table,
)
from shared_data import needs_mnist

FD, ID, CD = (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution,
              optuna.distributions.CategoricalDistribution)

TINY = {"optimizer": "sgd", "hidden": [20], "limit": 300, "val_split": 0.2, "epochs": 2,
        "batch_size": 50}


def test_default_space_is_the_books():
    space = SearchSpace.parse(None)
    assert space.specs == DEFAULT_SPACE
    lr, wd = space.distributions["lr"], space.distributions["weight_decay"]
    assert (lr.low, lr.high, lr.log) == (1e-6, 1e-2, True)
    assert (wd.low, wd.high, wd.log) == (1e-8, 1e-4, True)


def test_space_parses_every_kind_of_entry():
    space = SearchSpace.parse([
        "lr=1e-4:1e-1:log", "batch_size=32:256:log", "dropout=0:0.5", "hidden=50,100|100,100",
        "optimizer=sgd|adam|adamw", "batchnorm=true|false", "opt.momentum=0.5:0.99",
        "act.alpha=0.01:0.3",
    ])
    d = space.distributions
    assert isinstance(d["lr"], FD) and d["lr"].log and d["lr"].low == 1e-4
    assert isinstance(d["batch_size"], ID) and (d["batch_size"].low, d["batch_size"].high) == (
        32, 256)
    assert isinstance(d["dropout"], FD) and not d["dropout"].log and d["dropout"].high == 0.5
    assert d["hidden"].choices == ("50,100", "100,100")
    assert d["optimizer"].choices == ("sgd", "adam", "adamw")
    assert d["batchnorm"].choices == (True, False)
    assert (d["opt.momentum"].low, d["act.alpha"].high) == (0.5, 0.3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lr=1e-1:1e-4:log", "the range is inverted"),
        ("dropout=0.3:0.3", "the range is empty"),
        ("lr=0:1e-2:log", "log-scale range needs LOW > 0"),
        ("learning_rate=1e-4:1e-2", "cannot search 'learning_rate'"),
        ("limit=100:200", "fixed for a whole search"),
        ("opt.nothing=0:1", "no optimizer has an option 'nothing'"),
        ("optimizer=sgd|lion", "unknown optimizer 'lion'"),
        ("dropout=0:1.5", "dropout must be"),
        ("lr=0.01", "fixes one value"),
        ("optimizer=1e-4:1e-2", "not a number"),
        ("lr", "must be KEY=SPEC"),
        ("hidden=50|x", "not a list of layer sizes"),
    ],
)
def test_bad_space_entries_are_refused_with_one_clear_message(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SearchSpace.parse([spec])


def test_unknown_sampler_and_pruner_are_refused():
    with pytest.raises(ValueError, match="unknown sampler 'grid': choose one of tpe, random"):
        make_sampler("grid")
    with pytest.raises(ValueError, match="unknown pruner 'early'"):
        make_pruner("early")


def test_space_file(tmp_path):
    path = tmp_path / "space.txt"
    path.write_text("# the book's space\nlr=1e-6:1e-2:log\n\nweight_decay=1e-8:1e-4:log  # L2\n")
    assert SearchSpace.from_file(path).specs == DEFAULT_SPACE


def test_edge_hints_say_widen_at_an_edge_and_nothing_inside():
    space = SearchSpace.parse(DEFAULT_SPACE)
    hints = space.edges({"lr": 9e-3, "weight_decay": 1e-6})
    assert len(hints) == 1 and "upper edge" in hints[0] and "widen" in hints[0]
    assert space.edges({"lr": 1e-4, "weight_decay": 1e-6}) == []


def test_own_objective_in_this_process_finds_the_maximum():
    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        return -((x - 2.0) ** 2)

    result = search(objective=objective, n_trials=30, workers=0, seed=3)
    assert len(result.study.trials) == 30 and result.added == list(range(30))
    assert abs(result.best_trial.params["x"] - 2.0) < 1.0
    assert result.best_config is None  # no run configuration behind it


def test_own_objective_errors_fail_the_trial_only_when_caught():
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if x > 0.5:
            raise ZeroDivisionError("boom")
        return x

    result = search(objective=objective, n_trials=12, workers=0, seed=0,
                    catch=(ZeroDivisionError,))
    failed = [t for t in result.study.trials if t.state.name == "FAIL"]
    assert failed and all(t.user_attrs["reason"] == "boom" for t in failed)
    with pytest.raises(ZeroDivisionError):
        search(objective=objective, n_trials=12, workers=0, seed=0)


@needs_mnist
def test_trials_are_scored_on_validation_and_the_seed_fixes_them(tmp_path):
    cfg = RunConfig.from_dict(TINY)
    space = ["lr=1e-3:1:log", "hidden=10|20,20"]
    a = search(cfg, space, n_trials=4, sampler="random", pruner="none", workers=0, seed=5)
    b = search(cfg, space, n_trials=4, sampler="random", pruner="none", workers=0, seed=5)
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]
    assert [t.value for t in a.study.trials] == [t.value for t in b.study.trials]
    for t in a.study.trials:
        assert t.state.name == "COMPLETE" and t.user_attrs["epochs"] == 2
        assert 0.0 <= t.value <= 1.0
        assert t.intermediate_values[2] == t.value  # reported per epoch, scored by the last
    best = a.best_config
    assert best.lr == a.best_trial.params["lr"]
    assert list(best.hidden) == [int(s) for s in a.best_trial.params["hidden"].split(",")]
    assert best.epochs == 2 and best.optimizer == "sgd"
    written = save_results(a, tmp_path)
    assert RunConfig.from_dict(__import__("json").loads((tmp_path / "best.json").read_text())) \
        == best
    assert {p.name for p in written} >= {"trials.csv", "best.json", "history.png"}
    header, rows = trials_table(a)
    assert header[:5] == ["rank", "trial", "state", "val_acc", "epochs"]
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)


@needs_mnist
def test_diverging_trials_fail_with_a_reason_and_the_search_goes_on():
    cfg = RunConfig.from_dict({**TINY, "epochs": 1})
    result = search(cfg, ["lr=1e3:1e5:log"], n_trials=3, sampler="random",
                    pruner="none", workers=0, seed=0)
    states = [t.state.name for t in result.study.trials]
    assert states == ["FAIL"] * 3
    kinds = {t.user_attrs["state"] for t in result.study.trials}
    assert kinds == {"diverged"}
    assert all("lower the learning rate" in t.user_attrs["reason"] for t in result.study.trials)
    assert result.best_trial is None and result.best_config is None


@needs_mnist
def test_resume_adds_new_trials_and_keeps_the_first(tmp_path):
    cfg = RunConfig.from_dict({**TINY, "epochs": 1})
    store = tmp_path / "study.log"
    kw = dict(sampler="tpe", pruner="none", workers=0, seed=2)
    first = search(cfg, None, n_trials=3, storage=store, **kw)
    before = [(t.number, t.params, t.value) for t in first.study.trials]
    again = search(cfg, None, n_trials=2, storage=store, **kw)
    after = [(t.number, t.params, t.value) for t in again.study.trials]
    assert len(after) == 5 and after[:3] == before and again.added == [3, 4]
    assert len({tuple(sorted(p.items())) for _, p, _ in after}) == 5  # distinct trials
    whole = search(cfg, None, n_trials=5, **kw)  # the same as one run of 5 trials
    assert [(t.params, t.value) for t in whole.study.trials] == [(p, v) for _, p, v in after]


@needs_mnist
def test_median_pruner_stops_trials_in_a_space_with_hopeless_regions():
    cfg = RunConfig.from_dict({**TINY, "epochs": 3})
    result = search(cfg, ["lr=1e-6:1:log"], n_trials=12, sampler="random", pruner="median",
                    workers=0, seed=1)
    states = [t.state.name for t in result.study.trials]
    pruned = [t for t in result.study.trials if t.state.name == "PRUNED"]
    assert pruned and "COMPLETE" in states
    assert all(t.user_attrs["epochs"] < 3 for t in pruned)
    assert all(not math.isnan(t.value) for t in result.study.trials if t.value is not None)


@needs_mnist
def test_hyperband_pruner_stops_trials_with_hopeless_learning_rates():
    cfg = RunConfig.from_dict({**TINY, "epochs": 4})
    result = search(cfg, ["lr=1e-6:1:log"], n_trials=16, sampler="random",
                    pruner="hyperband", workers=0, seed=0)
    pruned = [t for t in result.study.trials if t.state.name == "PRUNED"]
    done = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    assert pruned and done
    assert all(t.user_attrs["epochs"] < 4 for t in pruned)
    assert all(t.user_attrs["epochs"] == 4 for t in done)
    # What it stopped had learnt less, after as many epochs, than the best of the rest.
    best = max(done, key=lambda t: t.value)
    for t in pruned:
        step = max(t.intermediate_values)
        assert t.intermediate_values[step] <= best.intermediate_values[step]


def test_cmaes_sampler_searches_numeric_ranges():
    pytest.importorskip("cmaes")

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_float("y", -5, 5)
        return -((x - 1.0) ** 2) - (y + 2.0) ** 2

    result = search(objective=objective, n_trials=40, sampler="cmaes", workers=0, seed=0)
    best = result.best_trial.params
    assert abs(best["x"] - 1.0) < 0.5 and abs(best["y"] + 2.0) < 0.5
    # After its first (independent) trial, CMA-ES drew the points: its state is in the study.
    assert any(k.startswith("cma") for t in result.study.trials[1:]
               for k in t.system_attrs)


@needs_mnist
def test_cmaes_sampler_on_a_run_configuration_and_refused_for_choices():
    pytest.importorskip("cmaes")
    cfg = RunConfig.from_dict({**TINY, "epochs": 1})
    result = search(cfg, DEFAULT_SPACE, n_trials=3, sampler="cmaes", pruner="none",
                    workers=0, seed=0)
    assert [t.state.name for t in result.study.trials] == ["COMPLETE"] * 3
    assert 1e-6 <= result.best_config.lr <= 1e-2
    with pytest.raises(ValueError, match="cmaes sampler searches numeric ranges only, and "
                       "optimizer is a list of choices"):
        search(cfg, ["lr=1e-4:1e-1:log", "optimizer=sgd|adam"], n_trials=1, sampler="cmaes")


@needs_mnist
def test_experiment_compares_random_search_and_tpe_on_the_same_budget(tmp_path):
    import csv

    from dlscratch.experiments import run_experiment

    m = run_experiment("hyperparameter-search", tmp_path, quick=True, echo=None)
    folder = tmp_path / "hyperparameter-search"
    with open(folder / "results-tpe.csv") as f:
        tpe = list(csv.DictReader(f))
    with open(folder / "best-so-far.csv") as f:
        so_far = list(csv.DictReader(f))
    assert len(tpe) == m["config"]["trials"]
    assert all(1e-6 <= float(r["lr"]) <= 1e-2 for r in tpe)
    for sampler, results in (("tpe", tpe), ("random", None)):
        curve = [float(r["best_val_acc"]) for r in so_far
                 if r["sampler"] == sampler and r["seed"] == "0"]
        assert len(curve) == m["config"]["trials"] and curve == sorted(curve)
        if results is not None:
            assert curve[-1] == max(float(r["val_acc"]) for r in results)
    assert m["summary"]["tpe"]["best"]["val_acc"] == float(tpe[0]["val_acc"])
    assert {"hyperparameter-search.png", "hyperparameter-search-tpe.png",
            "hyperparameter-samplers.png"} <= {p.name for p in folder.iterdir()}
