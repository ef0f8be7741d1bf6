"""``dlscratch train``: bad options exit 2 with a message; a real run; Ctrl-C; resume."""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from dlscratch.cli import main
from dlscratch.cli import train as train_cli
from dlscratch.training import EPOCH_COLUMNS, LambdaCallback

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ["--limit", "1000", "--no-progress"]


def exit_code_and_err(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "-0.1"], "argument --lr: must be > 0, got -0.1"),
        (["--lr", "abc"], "expected a number"),
        (["--hidden", "100,abc"], "invalid layer sizes '100,abc'"),
        (["--hidden", "100,0"], "comma-separated positive integers"),
        (["--optimizer", "lion"], "invalid choice: 'lion' (choose from "),
        (["--activation", "gelu"], "invalid choice: 'gelu'"),
        (["--epochs", "0"], "must be >= 1"),
        (["--epochs", str(10**23)], "must be >= 1 and <= 100000"),
        (["--batch-size", "-5"], "must be >= 1"),
        (["--val-split", "1.5"], "must be >= 0 and < 1, got 1.5"),
        (["--dropout", "1"], "must be >= 0 and < 1, got 1"),
        (["--weight-decay", "-1"], "must be >= 0, got -1"),
        (["--init", "huge"], "expected 'he', 'xavier' or a standard deviation"),
        (["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
        (["--seed", "-1"], "must be >= 0"),
        (["--device", "tpu"], "invalid choice: 'tpu' (choose from "),
        (["--threads", "0"], "must be >= 1"),
        (["--momentum", "1.5"], "must be >= 0 and < 1"),
        (["--alpha", "-1"], "must be >= 0 and < 1"),
        (["--opt", "momentum"], "expected KEY=VALUE"),
    ],
)
def test_invalid_options_exit_2_and_say_what_is_valid(capsys, argv, message):
    code, err = exit_code_and_err(capsys, ["train", *argv])
    assert code == 2
    assert message in err
    assert "usage: dlscratch train" in err
    if "choose from" in message:  # the valid names are listed in the error itself
        line = err.strip().splitlines()[-1]  # (the usage lines list every choice anyway)
        valid = {"--optimizer": ("sgd", "rmsprop", "adamw"), "--device": ("cpu", "cuda")}[argv[0]]
        assert "choose from" in line and all(name in line for name in valid)


def test_batch_size_larger_than_the_data_is_clamped_with_a_note(capsys, tmp_path):
    argv = ["train", "--limit", "500", "--batch-size", "600", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "r")]
    code, err = exit_code_and_err(capsys, argv)
    assert code == 0
    assert "note: --batch-size 600 is larger than the 450 training images; using 450" in err
    history = (tmp_path / "r" / "history.csv").read_text().splitlines()
    assert history[1].split(",")[1] == "1"  # one step of 450 images


def test_an_existing_run_folder_is_never_overwritten_silently(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.npz").write_bytes(b"precious")
    code, err = exit_code_and_err(capsys, ["train", *SMALL, "--out", str(out)])
    assert code == 2
    assert "already exists and is not empty" in err
    assert "--overwrite" in err and "another --out" in err
    assert (out / "model.npz").read_bytes() == b"precious"


def test_resume_only_lets_epochs_change(capsys, tmp_path):
    code, err = exit_code_and_err(capsys, ["train", "--resume", str(tmp_path), "--lr", "0.1"])
    assert code == 2 and "--lr cannot be changed when resuming" in err
    code, err = exit_code_and_err(capsys, ["train", "--resume", str(tmp_path)])
    assert code == 2 and "no checkpoint.npz in" in err
    code, err = exit_code_and_err(capsys, ["train", "--resume", str(tmp_path / "nope")])
    assert code == 2 and "run folder not found" in err


def test_cuda_without_a_gpu_exits_2_with_the_fix_before_touching_anything(
    capsys, tmp_path, monkeypatch
):
    import dlscratch.backend

    monkeypatch.setattr(dlscratch.backend, "GPU_AVAILABLE", False)
    out = tmp_path / "run"
    code, err = exit_code_and_err(capsys, ["train", *SMALL, "--device", "cuda", "--out", str(out)])
    assert code == 2
    assert "--device cuda needs CuPy and an NVIDIA GPU" in err
    assert "--device cpu" in err and "dlscratch[gpu]" in err
    assert not out.exists()


def test_early_stopping_needs_a_validation_split(capsys, tmp_path):
    argv = ["train", *SMALL, "--val-split", "0", "--early-stopping", "2", "--out", str(tmp_path)]
    code, err = exit_code_and_err(capsys, argv)
    assert code == 2 and "--early-stopping) needs validation data" in err and "--val-split" in err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One real run on 2000 MNIST images, 2 epochs, in the default run folder under a tmp cwd."""
    cwd = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(cwd)
    argv = ["train", "--limit", "2000", "--epochs", "2", "--no-progress", "--seed", "3"]
    try:
        code = main([*argv, "--threads", "1"])
    finally:
        os.chdir(old)
    assert code == 0
    (out,) = (cwd / "runs").iterdir()
    return out


def test_run_folder_has_every_file_and_they_parse(small_run):
    out = small_run
    assert out.name.endswith("-mnist-100x100-relu-adam")
    for name in train_cli.FILES + ("checkpoint.npz",):
        assert (out / name).is_file(), name
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == EPOCH_COLUMNS
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [r["step"] for r in rows] == ["18", "36"]  # 1800 training images / 100
    assert 0 < float(rows[1]["val_acc"]) <= 1 and float(rows[1]["lr"]) == 0.001

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("config", "versions", "seed", "dataset", "final", "wall_time_s", "network"):
        assert key in metrics
    assert metrics["seed"] == 3 and metrics["config"]["limit"] == 2000
    assert metrics["config"]["optimizer"] == "adam" and metrics["config"]["lr"] == 0.001
    assert metrics["dataset"]["checksum"] and metrics["dataset"]["train_size"] == 1800
    assert metrics["dataset"]["val_size"] == 200 and metrics["dataset"]["test_size"] == 10000
    final = metrics["final"]
    assert final["val_acc"] == pytest.approx(float(rows[1]["val_acc"]))
    assert final["test_acc"] > 0.8  # 2 epochs on 1800 images
    assert metrics["versions"]["numpy"] == np.__version__
    assert metrics["hardware"]["device"] == "cpu" and metrics["hardware"]["cpu_count"] >= 1
    # where it ran is part of the configuration, but the one part a resume may change
    assert metrics["config"]["device"] == "cpu" and metrics["config"]["threads"] == 1
    for name in ("curves.png", "confusion.png", "misclassified.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC

    from dlscratch.data import load_mnist
    from dlscratch.io import load_model

    net = load_model(out)
    _, (x_test, t_test) = load_mnist()
    assert net.accuracy(x_test, t_test) == pytest.approx(final["test_acc"])


def test_overwrite_replaces_an_old_run_and_the_output_reports_each_epoch(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    for name in ("model.npz", "checkpoint.npz", "notes.txt"):
        (run / name).write_bytes(b"old")
    code = main(["train", *SMALL, "--epochs", "2", "--out", str(run), "--overwrite"])
    out = capsys.readouterr().out
    assert code == 0
    assert (run / "notes.txt").read_bytes() == b"old"  # not ours: left alone
    from dlscratch.data import load_mnist
    from dlscratch.io import load_checkpoint

    assert load_checkpoint(run / "checkpoint.npz").user["trainer"]["epoch"] == 2
    _, (x_test, t_test) = load_mnist()
    test_acc = json.loads((run / "metrics.json").read_text())["final"]["test_acc"]
    assert load_checkpoint(run).network.accuracy(x_test, t_test) == test_acc > 0.5
    lines = out.splitlines()
    assert any(line.startswith("network 784-100-100-10 relu") for line in lines)
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert "accuracy  train" in out and "test 0." in out
    assert f"dlscratch evaluate --model {tmp_path / 'r'}" in out


def _interrupt_at(monkeypatch, step):
    """Make the next ``dlscratch train`` receive a real SIGINT after ``step`` updates."""
    original = train_cli._callbacks

    def with_interrupt(*args, **kwargs):
        def hook(logs):
            if logs["step"] == step:
                os.kill(os.getpid(), signal.SIGINT)

        return [*original(*args, **kwargs), LambdaCallback(on_step_end=hook)]

    monkeypatch.setattr(train_cli, "_callbacks", with_interrupt)


def test_ctrl_c_exits_130_and_resume_gives_the_uninterrupted_result(
    tmp_path, capsys, monkeypatch, sigint_default
):
    opts = [*SMALL, "--epochs", "3", "--dropout", "0.1", "--batchnorm", "--schedule", "cosine"]
    assert main(["train", *opts, "--out", str(tmp_path / "straight")]) == 0

    run = tmp_path / "interrupted"
    _interrupt_at(monkeypatch, 13)  # 9 steps per epoch: mid-way through epoch 2
    code = main(["train", *opts, "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted at step 13 (1 of 3 epochs done)" in err
    assert f"resume with: dlscratch train --resume {run}" in err
    assert (run / "checkpoint.npz").is_file() and not (run / "model.npz").exists()
    monkeypatch.undo()

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    with np.load(tmp_path / "straight" / "model.npz") as a, np.load(run / "model.npz") as b:
        names = [k for k in a.files if k != "__metadata__"]
        assert names and sorted(names) == sorted(k for k in b.files if k != "__metadata__")
        assert all(np.array_equal(a[k], b[k]) for k in names)
    straight = (tmp_path / "straight" / "history.csv").read_text().splitlines()
    resumed = (run / "history.csv").read_text().splitlines()
    column = EPOCH_COLUMNS.index("val_acc")
    assert [r.split(",")[column] for r in straight] == [r.split(",")[column] for r in resumed]


def test_a_real_ctrl_c_in_a_separate_process(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # `python -m dlscratch.cli`, with Python's usual Ctrl-C handling even when the tests
    # run in the background (which starts every child with SIGINT ignored)
    entry = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('dlscratch.cli', run_name='__main__', alter_sys=True)"
    )
    cmd = [sys.executable, "-c", entry, "train", "--limit", "2000", "--epochs", "200"]
    proc = subprocess.Popen(
        [*cmd, "--no-progress", "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in proc.stdout:
            if line.startswith("epoch "):  # training is under way
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"resume with: dlscratch train --resume {run}" in err
    assert (run / "checkpoint.npz").is_file()


def test_a_diverging_run_exits_1_with_the_step_and_a_hint(capsys, tmp_path):
    argv = ["train", *SMALL, "--optimizer", "sgd", "--lr", "1e6", "--out", str(tmp_path / "r")]
    code, err = exit_code_and_err(capsys, argv)
    assert code == 1
    assert re.search(r"dlscratch train: error: the training loss rose to \S+, more than 10 times "
                     r"its start \(\S+\) at step \d+", err)
    assert "lower the learning rate (it is 1e+06; try 100000)" in err


# -- the run configuration: --config, optimizer and activation options -----------------------


def test_config_file_round_trip_and_overrides(capsys, tmp_path):
    first = tmp_path / "first"
    argv = ["train", *SMALL, "--epochs", "1", "--optimizer", "momentum", "--momentum", "0.8",
            "--hidden", "30", "--out", str(first)]
    assert main(argv) == 0
    saved = json.loads((first / "config.json").read_text())
    assert saved["optimizer_options"] == {"momentum": 0.8} and saved["hidden"] == [30]
    assert saved["lr"] == 0.01  # Momentum's default rate, written down
    second = tmp_path / "second"
    argv = ["train", "--config", str(first / "config.json"), "--seed", "5", "--no-progress",
            "--out", str(second)]
    assert main(argv) == 0
    again = json.loads((second / "config.json").read_text())
    assert again == {**saved, "seed": 5}


def test_adamw_and_leaky_relu_train_from_the_command_line(capsys, tmp_path):
    argv = ["train", *SMALL, "--epochs", "1", "--optimizer", "adamw", "--opt", "weight_decay=0.05",
            "--activation", "leaky_relu", "--alpha", "0.1", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "leaky_relu (init he; alpha 0.1" in out and "adamw lr 0.001, weight_decay 0.05" in out
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["activation_options"] == {"alpha": 0.1}
    assert config["optimizer_options"] == {"weight_decay": 0.05}
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["final"]["test_acc"] > 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"epoch": 3}, "unknown key 'epoch'"),
        ({"optimizer": "sgd", "optimizer_options": {"momentum": 0.9}}, "has no option 'momentum'"),
        ({"hidden": [10**9]}, "at most 100,000"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_bad_config_file_exits_2_naming_the_key(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    code, err = exit_code_and_err(capsys, ["train", "--config", str(path), "--out",
                                           str(tmp_path / "r")])
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_an_option_of_another_optimizer_is_refused(capsys, tmp_path):
    code, err = exit_code_and_err(capsys, ["train", "--optimizer", "sgd", "--momentum", "0.9",
                                           "--out", str(tmp_path / "r")])
    assert code == 2 and "optimizer 'sgd' has no option 'momentum'" in err


def test_a_convolutional_network_trains_and_resumes_from_the_command_line(capsys, tmp_path):
    run = tmp_path / "cnn"
    argv = ["train", "--net", "simple-cnn", "--limit", "300", "--epochs", "1", "--hidden", "20",
            "--no-progress", "--out", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "network simple-cnn" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["network"]["class"] == "SimpleConvNet" and metrics["final"]["test_acc"] > 0.2
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--net", "deep-cnn", "--activation", "tanh"], "has activation 'relu' built in"),
        (["--net", "simple-cnn", "--batchnorm"], "has batchnorm False built in"),
        (["--net", "simple-cnn", "--hidden", "10,10"], "1 hidden fully connected layer"),
    ],
)
def test_options_a_network_does_not_have_are_refused(capsys, tmp_path, argv, message):
    code, err = exit_code_and_err(capsys, ["train", *argv, "--out", str(tmp_path / "r")])
    assert code == 2 and message in err and not (tmp_path / "r").exists()


def test_ctrl_c_while_writing_results_says_how_to_finish(capsys, tmp_path, monkeypatch):
    run = tmp_path / "r"
    original = train_cli._finish

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "_finish", interrupted)
    code = main(["train", *SMALL, "--epochs", "1", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 130 and "training had finished" in err
    assert f"dlscratch train --resume {run}" in err
    monkeypatch.setattr(train_cli, "_finish", original)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "has already finished" in out and (run / "metrics.json").is_file()
    assert "checkpoint.npz (what --resume continues from)" in out


def test_progress_as_json_lines_for_programs(capsys, tmp_path):
    argv = ["train", "--limit", "2000", "--epochs", "2", "--progress", "jsonl", "--out",
            str(tmp_path / "r")]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if line.startswith("{")]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["epochs"] == 2 for e in epochs)
    rows = (tmp_path / "r" / "history.csv").read_text().splitlines()
    column = EPOCH_COLUMNS.index("val_acc")
    assert [float(r.split(",")[column]) for r in rows[1:]] == [e["val_acc"] for e in epochs]
    for e in events:
        if e["event"] == "progress":
            assert 1 <= e["step"] <= e["steps"] and e["loss"] > 0


@pytest.mark.parametrize("command", ["train", "search"])
def test_every_run_configuration_field_has_a_flag(command):
    from dlscratch.cli import build_parser
    from dlscratch.config import RunConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {flag for action in sub._actions for flag in action.option_strings}
    fields = [name for name, option in RunConfig.FIELDS.items() if option.type is not dict]
    assert [n for n in fields if "--" + n.replace("_", "-") not in flags] == []
    assert {"--opt", "--config"} <= flags  # the options dicts and a whole configuration
