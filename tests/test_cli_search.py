"""``dlscratch search``: a tiny real search, bad ranges exit 2, the test set is never used."""

import argparse
import csv
import json
import re

import pytest

import dlscratch.data
from dlscratch import cli
from dlscratch.cli.options import log_range
from dlscratch.hpo import LogUniform
from shared_data import needs_mnist

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--limit", "600", "--trials", "3", "--epochs", "1", "--no-progress"]


def exit_code_and_output(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the range type -------------------------------------------------------------------------------


def test_log_range_parses_ranges_and_fixed_values():
    assert log_range("1e-6:1e-2") == LogUniform(1e-6, 1e-2)
    assert log_range("0.001") == 0.001 and log_range("0") == 0.0
    for text, message in [
        ("1e-2:1e-6", "LOW must be smaller than HIGH, e.g. 1e-6:1e-2"),
        ("1e-3:1e-3", "LOW must be smaller than HIGH (for one fixed value write just 1e-3)"),
        ("0:1e-2", "both bounds must be > 0 on a log scale"),
        ("1e-6:abc", "expected two numbers LOW:HIGH"),
        ("1e-6:1e-2:1", "expected two numbers LOW:HIGH"),
        ("fast", "expected a range LOW:HIGH such as 1e-6:1e-2"),
        ("-1", "a fixed value must be >= 0"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            log_range(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "1e-2:1e-6"], "LOW must be smaller than HIGH"),
        (["--lr", "0:1e-2"], "both bounds must be > 0 on a log scale"),
        (["--lr=-1e-3:1e-2"], "both bounds must be > 0 on a log scale"),
        (["--weight-decay", "1e-4:1e-8"], "LOW must be smaller than HIGH"),
        (["--weight-decay", "1e-4:1e-4"], "LOW must be smaller than HIGH"),
        (["--lr", "0"], "a fixed learning rate must be > 0"),
        (["--lr", "fast"], "expected a range LOW:HIGH"),
        (["--optimizer", "adamw"], "invalid choice: 'adamw' (choose from "),
        (["--trials", "0"], "must be a positive integer"),
        (["--val-split", "0"], "scored on the validation split"),
        (["--hidden", "100,x"], "invalid layer sizes"),
    ],
)
def test_bad_input_exits_2_and_says_what_is_valid(capsys, tmp_path, argv, message):
    out = tmp_path / "never"
    code, _, err = exit_code_and_output(capsys, ["search", *argv, "--out", str(out)])
    assert code == 2
    assert message in err
    assert "usage: dlscratch search" in err
    if "choose from" in message:  # in the error line, not just the usage lines
        line = err.strip().splitlines()[-1]
        assert "choose from" in line and "sgd" in line and "adam" in line
    assert not out.exists()


def test_an_existing_folder_is_never_overwritten_silently(capsys, tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    (out / "results.csv").write_text("precious")
    code, _, err = exit_code_and_output(capsys, ["search", *TINY, "--out", str(out)])
    assert code == 2
    assert "already exists and is not empty" in err and "--overwrite" in err
    assert (out / "results.csv").read_text() == "precious"


# -- real (tiny) searches -------------------------------------------------------------------------


@needs_mnist
def test_a_tiny_search_writes_ranked_results_a_figure_and_a_table(capsys, tmp_path):
    out = tmp_path / "search"
    code, stdout, _ = exit_code_and_output(capsys, ["search", *TINY, "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "search.png"]
    assert (out / "search.png").read_bytes()[:8] == PNG_MAGIC

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and [int(r["rank"]) for r in rows] == [1, 2, 3]
    assert {"trial", "lr", "weight_decay", "val_acc", "train_acc", "status"} <= set(rows[0])
    val = [float(r["val_acc"]) for r in rows]
    assert val == sorted(val, reverse=True)
    for r in rows:
        assert 1e-6 <= float(r["lr"]) <= 1e-2 and 1e-8 <= float(r["weight_decay"]) <= 1e-4
        assert "test" not in "".join(r)  # no test-set column

    data = json.loads((out / "results.json").read_text())
    assert data["seed"] == 0 and data["config"]["trials"] == 3 and data["config"]["limit"] == 600
    assert data["config"]["lr"] == {"type": "log-uniform", "low": 1e-6, "high": 1e-2}
    assert {"dlscratch", "numpy", "python"} <= set(data["versions"])
    assert data["dataset"]["train_size"] == 480 and data["dataset"]["val_size"] == 120
    assert data["dataset"]["test_set"] == "not used"
    assert [t["rank"] for t in data["trials"]] == [1, 2, 3]
    assert [t["metrics"]["val_acc"] for t in data["trials"]] == val
    assert data["best"]["index"] == int(rows[0]["trial"])

    assert "480 training images, 120 for validation" in stdout
    assert "[3/3] trial 2  lr" in stdout and "rank  trial" in stdout and "best: trial" in stdout
    assert "test acc" not in stdout
    suggested = re.search(
        r"search again where the best 2 trials lie: dlscratch search "
        r"--lr (\S+):(\S+) --weight-decay (\S+):(\S+)",
        stdout,
    )
    assert suggested, stdout
    best_two = sorted(float(r["lr"]) for r in rows[:2])
    low, high = float(suggested[1]), float(suggested[2])
    assert low == pytest.approx(best_two[0], rel=5e-3) and high == pytest.approx(
        best_two[1], rel=5e-3
    )


@needs_mnist
def test_the_test_set_is_never_used_and_the_same_seed_gives_the_same_trials(
    capsys, tmp_path, monkeypatch
):
    real_load = dlscratch.data.load_mnist

    class Untouchable:
        """Stands in for the test set: any use at all is remembered and raises."""

        touched = False

        def _touch(self, *args, **kwargs):
            type(self).touched = True
            raise AssertionError("the test set was used")

        __len__ = __getitem__ = __iter__ = __array__ = _touch

        def __getattr__(self, name):
            self._touch()

    def load_without_test_set(*args, **kwargs):
        train, _ = real_load(*args, **kwargs)
        return train, (Untouchable(), Untouchable())

    monkeypatch.setattr(dlscratch.data, "load_mnist", load_without_test_set)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        code, _, err = exit_code_and_output(
            capsys, ["search", *TINY, "--weight-decay", "0", "--out", str(out)]
        )
        assert code == 0, err
        runs.append(json.loads((out / "results.json").read_text()))
    assert not Untouchable.touched

    def key(run):
        return [(t["index"], t["params"], t["metrics"]) for t in run["trials"]]

    assert key(runs[0]) == key(runs[1])
    assert all(t["params"]["weight_decay"] == 0.0 for t in runs[0]["trials"])
    assert runs[0]["config"]["weight_decay"] == {"type": "fixed", "value": 0.0}


@needs_mnist
def test_ctrl_c_keeps_the_finished_trials_and_exits_130(capsys, tmp_path, monkeypatch):
    from dlscratch.cli import search as search_cli

    def make_objective(args, data, trials_seq):
        def objective(params, index):
            if index == 2:
                raise KeyboardInterrupt
            return {"val_acc": 0.5 + index / 10}

        return objective

    monkeypatch.setattr(search_cli, "make_objective", make_objective)
    out = tmp_path / "search"
    code, stdout, err = exit_code_and_output(
        capsys, ["search", *TINY, "--trials", "5", "--out", str(out)]
    )
    assert code == 130
    assert "interrupted after 2 of 5 trials" in err
    data = json.loads((out / "results.json").read_text())
    assert data["interrupted"] is True
    assert [(t["index"], t["rank"]) for t in data["trials"]] == [(1, 1), (0, 2)]
    assert (out / "search.png").read_bytes()[:8] == PNG_MAGIC
