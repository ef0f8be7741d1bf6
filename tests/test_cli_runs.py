"""``dlscratch runs``: the table of run folders and ``runs compare``, on real training runs."""

import json

import pytest

from dlscratch.cli import main
from shared_data import needs_mnist

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
pytestmark = needs_mnist


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real runs, differing in optimizer and epochs, plus a folder that is not a run."""
    root = tmp_path_factory.mktemp("runs")
    base = ["train", "--limit", "500", "--val-split", "0.2", "--no-progress"]
    assert main([*base, "--epochs", "1", "--out", str(root / "adam1")]) == 0
    argv = [*base, "--epochs", "2", "--optimizer", "sgd", "--lr", "0.05"]
    assert main([*argv, "--out", str(root / "sgd2")]) == 0
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_table_lists_each_run_with_its_numbers(runs, capsys):
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "run",
        "date",
        "network",
        "optimizer",
        "epochs",
        "best",
        "val",
        "acc",
        "test",
        "acc",
        "time",
    ]
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"adam1", "sgd2"}  # the folder without a run is not listed
    for name, optimizer in (("adam1", "adam lr=0.001"), ("sgd2", "sgd lr=0.05")):
        m = metrics(runs / name)
        assert optimizer in rows[name] and "mlp 100-100 relu" in rows[name]
        assert f"{m['final']['test_acc']:.4f}" in rows[name]
    assert rows["sgd2"].split()[8] == "2"  # epochs column


def test_sort_by_a_column_and_json(runs, capsys):
    assert main(["runs", str(runs), "--sort", "test", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    tests = [r["test"] for r in rows]
    assert tests == sorted(tests, reverse=True)  # best test accuracy first
    assert {r["name"]: r["epochs"] for r in rows} == {"adam1": 1, "sgd2": 2}
    best_val = {r["name"]: r["val"] for r in rows}
    history = (runs / "sgd2" / "history.csv").read_text().splitlines()
    val_col = history[0].split(",").index("val_acc")
    assert best_val["sgd2"] == max(float(line.split(",")[val_col]) for line in history[1:])
    assert main(["runs", str(runs), "--sort", "epochs", "--reverse", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["adam1", "sgd2"]


def test_compare_overlays_curves_and_prints_differences(runs, capsys, tmp_path):
    out = tmp_path / "cmp.png"
    argv = ["runs", "compare", str(runs / "adam1"), str(runs / "sgd2"), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG_MAGIC
    diffs = text.split("settings that differ:")[1]
    lines = {line.split()[0]: line for line in diffs.strip().splitlines()}
    assert "adam" in lines["optimizer"] and "sgd" in lines["optimizer"]
    assert "0.05" in lines["lr"] and lines["epochs"].split()[1:] == ["1", "|", "2"]
    assert "hidden" not in lines and "seed" not in lines  # the same in both
    # an existing figure is kept unless --overwrite
    before = out.read_bytes()
    assert main(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["runs", "{root}/nowhere"], "no such folder"),
        (["runs", "compare", "{root}/adam1"], "two or more run folders"),
        (["runs", "compare", "{root}/adam1", "{root}/notes"], "is not a run folder"),
        (["runs", "compare", "{root}/adam1", "{root}/gone"], "run folder not found"),
        (["runs", "{root}", "{root}"], "give one folder of runs"),
        (["runs", "--sort", "colour"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(runs, capsys, argv, message):
    argv = [a.replace("{root}", str(runs)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    if argv[1] != "--sort":
        assert len(err) == 1 and err[0].startswith("dlscratch runs: error: ")


def test_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    assert "no run folders in" in capsys.readouterr().out
