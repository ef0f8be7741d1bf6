"""Verdicts computed from each run's own numbers, the report's verdict column, and the book's
dropout lesson over several seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlscratch.experiments import base, run_experiment
from dlscratch.experiments.base import (
    EXACT,
    LESSON,
    NOT_REPRODUCED,
    WITHIN,
    judge,
    matches_printed,
    printed_half_unit,
)
from dlscratch.experiments.report import build_report
from shared_data import needs_mnist


# -- the verdict rules -----------------------------------------------------------------------------
def test_printed_precision_decides_exact():
    assert printed_half_unit(0.9352) == pytest.approx(5e-5)
    assert printed_half_unit(-2.58983747e13) == pytest.approx(5e4)
    assert printed_half_unit(0.15) == pytest.approx(5e-3)
    assert printed_half_unit(29) == 0.0
    assert matches_printed(0.93524, 0.9352) and not matches_printed(0.93526, 0.9352)
    assert matches_printed([-6.111107934e-10, 8.14814391e-10], [-6.11110793e-10, 8.14814391e-10])
    assert not matches_printed(28, 29) and not matches_printed(float("nan"), 0.5)


@pytest.mark.parametrize(
    "ours, book, kwargs, verdict",
    [
        (0.9352, 0.9352, {}, EXACT),
        (0.9302, 0.9352, {"tol": 0.01}, WITHIN),
        (0.075, 0.05, {"rtol": 0.5}, WITHIN),
        (0.08, 0.05, {"rtol": 0.5, "lesson": True}, LESSON),
        (0.08, 0.05, {"rtol": 0.5, "lesson": False}, NOT_REPRODUCED),
        (0.08, 0.05, {"rtol": 0.5}, NOT_REPRODUCED),
        (3.0, None, {"lesson": np.bool_(True)}, LESSON),  # NumPy booleans count too
        ("7 of 8", None, {"lesson": False}, NOT_REPRODUCED),
    ],
)
def test_judge(ours, book, kwargs, verdict):
    assert judge(ours, book, **kwargs) == verdict


def _fake(name, func, tmp_path, quick=True):
    spec = base.Experiment(name, "fake", "fake", "what it shows", func)
    base.REGISTRY[name] = spec
    try:
        return run_experiment(name, tmp_path, quick=quick, echo=None)
    finally:
        del base.REGISTRY[name]


def test_result_json_holds_verdicts_claims_and_the_quick_banner(tmp_path):
    def func(ctx):
        ctx.reference("accuracy", 0.9352, 0.9352)
        ctx.reference("loss", 0.9, 0.15, rtol=0.5, claim="SGD slowest", holds=False)
        ctx.reference("speed-up", 0.94, expected="many times faster", claim="faster", holds=False)
        ctx.claim("Batching makes inference many times faster.", 0.94 >= 5, "0.94x")
        ctx.finding("a plain measurement")

    m = _fake("fake-verdicts", func, tmp_path)
    saved = json.loads((tmp_path / "fake-verdicts" / "result.json").read_text())
    assert saved == m
    refs = {r["quantity"]: r for r in m["references"]}
    assert refs["accuracy"]["verdict"] == EXACT and refs["accuracy"]["book"] == 0.9352
    assert refs["loss"]["verdict"] == NOT_REPRODUCED and refs["loss"]["tolerance"] == "±50%"
    # Our own expectation is kept apart from the book's numbers.
    assert refs["speed-up"]["book"] is None and refs["speed-up"]["expected"]
    assert m["verdicts"][EXACT] == 1 and m["verdicts"][NOT_REPRODUCED] == 2
    assert m["findings"][0] == {
        "text": "Batching makes inference many times faster. (0.94x)",
        "holds": False,
    }
    assert m["findings"][1]["holds"] is None
    assert "not the book's setup" in m["banner"]

    page = build_report(tmp_path, names=["fake-verdicts"]).read_text()
    assert "<th>verdict</th>" in page
    assert 'class="verdict v-exact">reproduced exactly' in page
    assert 'class="verdict v-not">not reproduced (outside ±50%)' in page
    assert 'class="finding fails">Batching makes inference many times faster.' in page
    assert "ours, not the book's: many times faster" in page
    assert 'class="banner"' in page


def test_full_size_run_has_no_banner(tmp_path):
    m = _fake("fake-full", lambda ctx: ctx.reference("x", 1, 1), tmp_path, quick=False)
    assert m["banner"] is None
    page = build_report(tmp_path, names=["fake-full"]).read_text()
    assert 'class="banner"' not in page


# -- dropout: the book's form and its lesson ------------------------------------------------------
@needs_mnist
def test_book_dropout_narrows_the_gap_over_seeds():
    """The book's lesson (section 6.4.3), in a small version: with the book's dropout the
    train-test gap is smaller than without it, for each of three seeds."""
    from dlscratch.nets import MultiLayerNet
    from dlscratch.optim import SGD

    (x, t), (xt, tt) = base.load_mnist_cached(base.default_data_dir())
    x, t, xt, tt = x[:300], t[:300], xt[:1000], tt[:1000]
    for seed in range(3):
        gaps = {}
        for label, kw in (
            ("without", {}),
            ("book", {"use_dropout": True, "dropout_ratio": 0.2, "dropout_scale": "book"}),
        ):
            net = MultiLayerNet(784, [100] * 6, 10, rng=np.random.default_rng([seed, 1]), **kw)
            base.train_iterations(
                net,
                SGD(lr=0.01),
                x,
                t,
                iterations=300,
                batch_size=100,
                rng=np.random.default_rng([seed, 2]),
                record_loss=False,
            )
            gaps[label] = net.accuracy(x, t) - net.accuracy(xt, tt)
        assert gaps["without"] > 0.15, (seed, gaps)  # it does overfit
        assert gaps["book"] < gaps["without"] - 0.05, (seed, gaps)


@pytest.mark.slow
@needs_mnist
def test_dropout_experiment_shows_both_forms(tmp_path):
    m = run_experiment("dropout", tmp_path, quick=True, echo=None)
    runs = set(m["summary"]) - {"gap_reduction"}
    assert {"without", "dropout 0.2, book's form", "dropout 0.2, inverted"} <= runs
    assert "scale='book'" in m["config"]["runs"]["dropout 0.2, book's form"]
    book_rows = [r for r in m["references"] if r["quantity"].startswith("dropout 0.2, book")]
    assert [r["book"] for r in book_rows] == [0.67, 0.55]
    assert all(r["verdict"] in (WITHIN, EXACT, LESSON, NOT_REPRODUCED) for r in book_rows)
    claims = [f for f in m["findings"] if f["holds"] is not None]
    assert claims and all(isinstance(f["holds"], bool) for f in claims)
