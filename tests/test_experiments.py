"""`dlscratch experiment`: each experiment in quick mode, the outcomes the book teaches, the report.

One module-scoped run of ``dlscratch experiment all --quick`` (about half a
minute) feeds most tests; they read its ``result.json`` files and CSVs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dlscratch.cli import main
from dlscratch.experiments import EXPERIMENTS, ORDER, base, run_experiment, train_iterations
from dlscratch.experiments.hyperparameter import LR_LOG10, log_uniform, sample_trials
from dlscratch.experiments.optimizers import descend_2d, optimizers_2d, sign_changes
from shared_data import BOOK_WEIGHTS


def _mnist_available() -> bool:
    from dlscratch.data import locate_dataset

    try:
        locate_dataset("mnist", base.default_data_dir(), download=False)
    except (OSError, ValueError):
        return False
    return True


HAVE_MNIST = _mnist_available()
HAVE_WEIGHTS = BOOK_WEIGHTS.is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST files not found")
needs_weights = pytest.mark.skipif(
    not (HAVE_MNIST and HAVE_WEIGHTS), reason=f"MNIST or book weights ({BOOK_WEIGHTS}) missing"
)


def _runnable() -> list:
    names = []
    for name, spec in EXPERIMENTS.items():
        if spec.needs_mnist and not HAVE_MNIST:
            continue
        if spec.needs_weights and not HAVE_WEIGHTS:
            continue
        names.append(name)
    return names


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Run every runnable experiment with --quick into one folder; returns (folder, stdout)."""
    out = tmp_path_factory.mktemp("report")
    names = _runnable()
    argv = [
        "experiment",
        *(["all"] if names == list(EXPERIMENTS) else names),
        "--quick",
        "--out",
        str(out),
    ]
    if HAVE_WEIGHTS:
        argv += ["--weights", str(BOOK_WEIGHTS)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    assert rc == 0, buf.getvalue()
    return out, buf.getvalue()


def _manifest(out: Path, name: str) -> dict:
    path = out / name / "result.json"
    if not path.is_file():
        pytest.skip(f"{name} was not run (missing data)")
    return json.loads(path.read_text())


def _csv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- listing and argument errors ------------------------------------------------------------------
def test_list_names_every_experiment(capsys):
    assert main(["experiment", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(ORDER)
    assert len(listed) >= 16
    # The book's order: inference (section 3.6) right after the activation functions.
    assert listed[:3] == ["activations", "inference", "numerical-diff"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["experiment", "no-such-thing"], "unknown experiment"),
        (["experiment"], "name an experiment"),
        (["experiment", "activations", "--seed", "-3"], "--seed: must be an integer >= 0, got -3"),
        (["experiment", "activations", "--seed", "abc"], "--seed: expected an integer >= 0"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    rc = main(
        [
            "experiment",
            "inference",
            "--quick",
            "--out",
            str(tmp_path),
            "--weights",
            str(tmp_path / "nope.pkl"),
        ]
    )
    assert rc == 2  # a path the user gave that does not exist is bad input
    assert "weights file not found" in capsys.readouterr().err


def test_find_book_weights_search_order(tmp_path, monkeypatch):
    from dlscratch.io import find_book_weights

    fake = tmp_path / "w" / "sample_weight.pkl"
    fake.parent.mkdir()
    fake.write_bytes(b"x")
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(fake.parent))
    assert find_book_weights() == fake
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(fake))
    assert find_book_weights() == fake
    assert find_book_weights(fake.parent) == fake
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(tmp_path / "elsewhere.pkl"))
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "datasets"))  # no weights beside it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as exc:
        find_book_weights()
    assert "DLSCRATCH_WEIGHTS" in str(exc.value) and "elsewhere.pkl" in str(exc.value)


# -- every experiment writes its files ------------------------------------------------------------
def test_every_experiment_writes_figure_csv_and_manifest(quick):
    out, stdout = quick
    import dlscratch

    for name in _runnable():
        m = _manifest(out, name)
        assert m["experiment"] == name and m["quick"] is True and m["seed"] == 0
        assert m["versions"]["dlscratch"] == dlscratch.__version__
        assert m["versions"]["numpy"] == np.__version__
        assert m["wall_time_s"] > 0 and m["config"] and m["summary"] and m["references"]
        assert m["figures"] and m["series"], name
        for fig in m["figures"]:
            png = out / name / fig
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            svg = png.with_suffix(".svg").read_text()
            assert "<svg" in svg
        for series in m["series"]:
            rows = _csv(out / name / series)
            assert rows, f"{name}/{series} is empty"
        if EXPERIMENTS[name].needs_mnist:
            from dlscratch.data import dataset_checksum

            assert m["dataset"]["checksum"] == dataset_checksum("mnist", base.default_data_dir())
        else:
            assert m["dataset"] is None
        # The printed summary shows our numbers beside the book's.
        assert f"== {name}:" in stdout
    assert stdout.count(" book ") >= len(_runnable())
    assert stdout.count("Quick mode:") == len(_runnable())  # the banner on every quick run


# -- chapters 3-4: the book's printed numbers -----------------------------------------------------
def test_book_numbers_reproduced_exactly(quick):
    out, _ = quick
    refs = {
        r["quantity"]: r
        for n in ("activations", "numerical-diff", "gradient-descent", "gradient-field")
        for r in _manifest(out, n)["references"]
    }
    assert refs["numerical_diff(f, 5)"]["ours"] == pytest.approx(0.1999999999990898, abs=1e-15)
    assert refs["numerical_diff(f, 10)"]["ours"] == pytest.approx(0.2999999999986347, abs=1e-15)
    np.testing.assert_allclose(
        refs["sigmoid([-1, 1, 2])"]["ours"], [0.26894142, 0.73105858, 0.88079708], atol=5e-9
    )
    for lr in ("0.1", "10", "1e-10"):
        r = refs[f"x after 100 steps, lr={lr}"]
        np.testing.assert_allclose(r["ours"], r["book"], rtol=1e-8)
    np.testing.assert_allclose(refs["gradient at (3, 4)"]["ours"], [6.0, 8.0], atol=1e-6)
    field = _manifest(out, "gradient-field")["summary"]
    assert field["max_angle_to_minimum_deg"] < 1e-3


# -- chapter 6.1: optimizers ----------------------------------------------------------------------
def test_optimizers_2d_outcomes(quick):
    s = _manifest(quick[0], "optimizers-2d")["summary"]
    for name in ("AdaGrad", "Adam"):
        assert s[name]["distance"] < s["SGD"]["distance"], name
    assert s["SGD"]["y_sign_changes"] == 29  # the book's zig-zag: every one of 30 points
    assert s["AdaGrad"]["y_sign_changes"] == 0
    rows = _csv(quick[0] / "optimizers-2d" / "paths.csv")
    assert len(rows) == 5 * 31
    assert {r["optimizer"] for r in rows} == {"SGD", "Momentum", "AdaGrad", "Adam", "RMSprop"}


def test_descend_2d_uses_the_library_update_rules():
    opt = optimizers_2d()
    path = descend_2d(opt["SGD"], steps=2)
    # SGD(0.95) on grad (x/10, 2y): x <- 0.905 x, y <- -0.9 y.
    np.testing.assert_allclose(path[1], [-7 * 0.905, 2 * -0.9])
    np.testing.assert_allclose(path[2], [-7 * 0.905**2, 2 * 0.81])
    path = descend_2d(opt["AdaGrad"], steps=1)
    np.testing.assert_allclose(path[1], [-7 + 1.5, 2 - 1.5], atol=1e-6)  # first step: lr * sign
    assert sign_changes([1, -1, 2, 3, -1]) == 3


@needs_mnist
def test_optimizers_mnist_sgd_is_slowest(quick):
    s = _manifest(quick[0], "optimizers-mnist")["summary"]
    key = next(k for k in s["SGD"] if k.startswith("mean_loss_last"))
    for name in ("Momentum", "AdaGrad", "Adam", "RMSprop"):
        assert s[name][key] < s["SGD"][key], name
    rows = _csv(quick[0] / "optimizers-mnist" / "losses.csv")
    assert abs(float(rows[0]["SGD"]) - np.log(10)) < 0.2  # starts at a uniform guess


# -- chapter 6.2: initial weights -----------------------------------------------------------------
def test_weight_init_histogram_outcomes(quick):
    s = _manifest(quick[0], "weight-init-histogram")["summary"]
    layers = s["layers"]
    # sigmoid, std 1: most activations below 0.05 or above 0.95, in every layer
    for stats in layers["sigmoid"]["std 1"]:
        assert stats["frac_below_0.05_or_above_0.95"] > 0.5
    # sigmoid, std 0.01: tiny spread around 0.5; Xavier spreads them out
    for stats in layers["sigmoid"]["std 0.01"]:
        assert stats["std"] < 0.03 and abs(stats["mean"] - 0.5) < 0.01
    assert min(st["std"] for st in layers["sigmoid"]["Xavier"]) > 0.1
    # ReLU: He keeps the last layer's spread, std 0.01 collapses it to ~0
    he = layers["relu"]["He"]
    assert he[-1]["std"] > 0.5 * he[0]["std"] and he[-1]["std"] > 0.3
    assert layers["relu"]["std 0.01"][-1]["std"] < 1e-4
    assert s["relu_std001_last_std"] < 1e-4 < s["relu_he_last_std"]


@needs_mnist
def test_weight_init_mnist_std001_does_not_learn(quick):
    s = _manifest(quick[0], "weight-init-mnist")["summary"]
    key = next(k for k in s["He"] if k.startswith("mean_loss_last"))
    assert abs(s["std=0.01"][key] - np.log(10)) < 0.02
    assert s["He"][key] < s["Xavier"][key] < s["std=0.01"][key]


# -- chapter 6.3-6.4: batch norm, weight decay, dropout -------------------------------------------
@needs_mnist
def test_batchnorm_wins_at_most_scales(quick):
    s = _manifest(quick[0], "batchnorm")["summary"]
    assert s["scales_count"] == len(s["weight_scales"]) >= 8
    assert s["bn_higher_count"] > s["scales_count"] / 2
    assert s["mean_final_bn"] > s["mean_final_plain"] + 0.2
    assert s["weight_scales"][0] == pytest.approx(1.0)
    assert s["weight_scales"][-1] == pytest.approx(1e-4)


@needs_mnist
@pytest.mark.parametrize(
    "name, label",
    [("weight-decay", "weight decay λ=0.1"), ("dropout", "dropout 0.2, book's form")],
)
def test_regulariser_shrinks_the_train_test_gap(quick, name, label):
    s = _manifest(quick[0], name)["summary"]
    plain, reg = s["without"], s[label]
    assert plain["final_train_acc"] > 0.9  # it does overfit the 300 samples
    assert reg["gap"] < plain["gap"] - 0.03
    tail = next(k for k in plain if k.startswith("mean_gap_last"))
    assert reg[tail] < plain[tail]
    rows = _csv(quick[0] / name / f"{name}.csv")
    assert label in {r["run"] for r in rows} and "without" in {r["run"] for r in rows}


# -- chapter 6.5: hyperparameter search -----------------------------------------------------------
def test_log_uniform_sampling():
    rng = np.random.default_rng(0)
    lr, wd = sample_trials(rng, 4000)
    assert lr.min() >= 1e-6 and lr.max() <= 1e-2
    assert wd.min() >= 1e-8 and wd.max() <= 1e-4
    # Uniform in the exponent: each of the four decades holds about a quarter.
    for samples, (lo, hi) in ((lr, LR_LOG10), (wd, (-8, -4))):
        counts, _ = np.histogram(np.log10(samples), bins=4, range=(lo, hi))
        np.testing.assert_allclose(counts / len(samples), 0.25, atol=0.03)
    # ...which a uniform draw on the linear scale would not give.
    assert np.mean(lr < 1e-4) == pytest.approx(0.5, abs=0.04)
    with pytest.raises(ValueError, match="low_exp < high_exp"):
        log_uniform(rng, -2, -6)


@needs_mnist
def test_hyperparameter_search_ranked_by_validation(quick):
    out = quick[0]
    m = _manifest(out, "hyperparameter-search")
    rows = _csv(out / "hyperparameter-search" / "results.csv")
    assert len(rows) == m["config"]["trials"]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    val = [float(r["val_acc"]) for r in rows]
    assert val == sorted(val, reverse=True)
    for r in rows:
        assert 1e-6 <= float(r["lr"]) <= 1e-2 and 1e-8 <= float(r["weight_decay"]) <= 1e-4
    assert m["summary"]["best"]["val_acc"] == val[0]
    assert m["config"]["validation_samples"] == 100 and m["config"]["train_samples"] == 400
    assert m["config"]["test_set"] == "not used"


class _Untouchable:
    """Stands in for the test set: any use at all raises and is remembered."""

    touched = False

    def _touch(self, *args, **kwargs):
        type(self).touched = True
        raise AssertionError("the test set was used")

    __len__ = __getitem__ = __iter__ = __array__ = _touch

    def __getattr__(self, name):
        self._touch()


@needs_mnist
def test_hyperparameter_search_never_touches_the_test_set(tmp_path, monkeypatch):
    (x_train, t_train), _ = base.load_mnist_cached(base.default_data_dir())
    poison = _Untouchable()
    with pytest.raises(AssertionError):  # the guard itself works
        len(poison)
    _Untouchable.touched = False
    monkeypatch.setattr(
        base, "load_mnist_cached", lambda data_dir=None: ((x_train, t_train), (poison, poison))
    )
    m = run_experiment("hyperparameter-search", tmp_path, quick=True, echo=None)
    assert not _Untouchable.touched
    assert m["summary"]["best"]["val_acc"] > 0


# -- two-layer net, gradient check, inference -----------------------------------------------------
@needs_mnist
def test_two_layer_net_learns(quick):
    m = _manifest(quick[0], "two-layer-net")
    s = m["summary"]
    assert s["first_loss"] == pytest.approx(np.log(10), abs=0.05)
    assert s["final_test_accuracy"] > 0.5 and s["final_train_accuracy"] > 0.5
    losses = _csv(quick[0] / "two-layer-net" / "loss.csv")
    assert len(losses) == m["config"]["iterations"]
    acc = _csv(quick[0] / "two-layer-net" / "accuracy.csv")
    assert int(acc[0]["iteration"]) == 0 and int(acc[-1]["iteration"]) == len(losses)


def test_gradient_check_precision(quick):
    s = _manifest(quick[0], "gradient-check")["summary"]
    assert s["all_passed"] is True
    assert s["worst_rel_backprop64"] < 1e-6
    assert s["worst_rel_backprop32"] < 1e-4
    assert s["worst_rel_numerical32"] > 1e-3  # why gradient checks run in float64
    two_layer = next(iter(s["networks"].values()))["params"]
    assert set(two_layer) == {"W1", "b1", "W2", "b2"}


@needs_weights
def test_inference_reproduces_0_9352(quick):
    s = _manifest(quick[0], "inference")["summary"]
    assert s["accuracy_single"] == 0.9352
    assert s["accuracy_batched"] == 0.9352
    assert s["same_predictions"] is True
    assert {"1", "10", "100", "1000"} <= set(s["images_per_second"])  # all timed best of 3


# -- the shared training loop ---------------------------------------------------------------------
def test_train_iterations_protocol():
    from dlscratch.nets import MultiLayerNet
    from dlscratch.optim import SGD

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    t = (x[:, 0] > 0).astype(int)
    net = MultiLayerNet(6, [8], 2, rng=1)
    log = train_iterations(
        net,
        SGD(lr=0.5),
        x,
        t,
        iterations=30,
        batch_size=10,
        rng=np.random.default_rng(2),
        eval_every=8,
        eval_sets={"train": (x, t)},
    )
    assert log.eval_iterations == [0, 8, 16, 24, 30]
    assert len(log.losses) == 30 and len(log.accuracy["train"]) == 5
    assert log.final("train") > 0.9 > log.accuracy["train"][0] and not log.diverged
    # Same seeds, same run.
    net2 = MultiLayerNet(6, [8], 2, rng=1)
    log2 = train_iterations(
        net2, SGD(lr=0.5), x, t, iterations=30, batch_size=10, rng=np.random.default_rng(2)
    )
    assert log2.losses == log.losses and log2.eval_iterations == []


def test_smooth_curve_keeps_length_and_constants():
    y = np.full(50, 3.0)
    np.testing.assert_allclose(base.smooth_curve(y), y)
    noisy = np.sin(np.linspace(0, 3, 200)) + np.random.default_rng(0).normal(0, 0.3, 200)
    s = base.smooth_curve(noisy)
    assert s.shape == noisy.shape and np.std(np.diff(s)) < np.std(np.diff(noisy)) / 3


def test_same_seed_same_numbers_other_seed_other_numbers(quick, tmp_path):
    first = _manifest(quick[0], "gradient-check")["summary"]
    again = run_experiment("gradient-check", tmp_path / "a", quick=True, seed=0, echo=None)
    other = run_experiment("gradient-check", tmp_path / "b", quick=True, seed=1, echo=None)
    assert again["summary"] == first
    assert other["summary"] != first


# -- the report -----------------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs, self.ids = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "a":
            self.hrefs.append(a["href"])
        if "id" in a:
            self.ids.append(a["id"])


def test_report_links_every_figure_offline(quick):
    out, stdout = quick
    page = out / "index.html"
    assert f"report: {page}" in stdout
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    assert parser.ids == list(EXPERIMENTS)
    for name in _runnable():
        m = _manifest(out, name)
        for fig in m["figures"]:
            assert f"{name}/{fig}" in parser.imgs
        for series in m["series"]:
            assert f"{name}/{series}" in parser.hrefs
        assert m["shows"] in text.replace("&#x27;", "'")  # the sentence on what it shows
    for link in parser.imgs + [h for h in parser.hrefs if not h.startswith("#")]:
        assert not re.match(r"^([a-z]+:|/)", link), link  # relative: readable offline
        assert (out / link).is_file(), link
    assert "<style>" in text and "<link" not in text and "<script" not in text


def test_single_run_refreshes_index_and_failures_are_reported(tmp_path, monkeypatch, capsys):
    broken = dataclasses.replace(
        EXPERIMENTS["numerical-diff"], func=lambda ctx: (_ for _ in ()).throw(ValueError("boom"))
    )
    monkeypatch.setitem(base.REGISTRY, "numerical-diff", broken)
    monkeypatch.setitem(EXPERIMENTS, "numerical-diff", broken)
    rc = main(["experiment", "activations", "numerical-diff", "--quick", "--out", str(tmp_path)])
    assert rc == 1
    assert "numerical-diff" in capsys.readouterr().err
    text = (tmp_path / "index.html").read_text()
    assert "This run failed: ValueError: boom" in text
    assert 'src="activations/activations.png"' in text
    assert "Not run yet" in text  # the other experiments
    # A single failing experiment raises through to the CLI's error handling (exit 2).
    assert main(["experiment", "numerical-diff", "--out", str(tmp_path)]) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_opens_in_headless_chromium(quick, tmp_path):
    page = (quick[0] / "index.html").resolve()
    common = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "dlscratch experiments" in dom.stdout
    assert dom.stdout.count("<img") == sum(
        len(_manifest(quick[0], n)["figures"]) for n in _runnable()
    )
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
