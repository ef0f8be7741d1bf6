"""``dlscratch search`` in this process (--workers 0): outputs, resume, and bad input."""

import json
import socket

import pytest

from dlscratch.cli import main
from dlscratch.config import RunConfig
from shared_data import needs_mnist

BASE = ["--optimizer", "sgd", "--hidden", "20", "--limit", "300", "--val-split", "0.2",
        "--epochs", "1", "--batch-size", "50", "--workers", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "grid"], "unknown sampler 'grid': choose one of tpe, random, cmaes"),
        (["--pruner", "early"], "unknown pruner 'early': choose one of median, hyperband"),
        (["--space", "lr=1e-1:1e-4:log"], "the range is inverted"),
        (["--space", "dropout=0.2:0.2"], "the range is empty"),
        (["--space", "momentum=0:1"], "cannot search 'momentum'"),
        (["--val-split", "0"], "scored on the validation split"),
        (["--optimizer", "sgd", "--momentum", "0.9"], "optimizer 'sgd' has no option 'momentum'"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, extra, message):
    line = _one_line_error(capsys, ["search", *BASE, "--out", str(tmp_path / "o"), *extra])
    assert line.startswith("dlscratch search: error:") and message in line
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_resume_of_a_folder_that_is_not_a_study(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    line = _one_line_error(capsys, ["search", "--resume", str(tmp_path)])
    assert "is not a search folder" in line


def test_unreachable_scheduler_is_a_clear_error(capsys, tmp_path, monkeypatch):
    import dlscratch.hpo

    monkeypatch.setattr(dlscratch.hpo, "CONNECT_TIMEOUT_S", 2.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    line = _one_line_error(
        capsys, ["search", *BASE, "--out", str(tmp_path / "o"), "--scheduler", address])
    assert f"cannot reach the Dask scheduler at {address}" in line


@needs_mnist
def test_search_writes_its_outputs_and_resumes(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["search", *BASE, "--out", str(out), "--trials", "3", "--sampler", "random",
            "--space", "lr=1e-3:1:log", "--space", "weight_decay=1e-8:1e-4:log",
            "--pruner", "none", "--seed", "4"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "study: 3 trials (3 complete)" in text and "dlscratch train --config" in text
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "rank,trial,state,val_acc,epochs,lr,weight_decay,reason" and len(rows) == 4
    first = {r.split(",")[1]: r for r in rows[1:]}
    best = RunConfig.from_dict(json.loads((out / "best.json").read_text()))
    assert best.optimizer == "sgd" and best.hidden == (20,) and best.limit == 300
    assert f"{best.lr!r}" in rows[1]  # the top-ranked trial's learning rate
    assert (out / "history.png").stat().st_size > 0 and (out / "lr-weight-decay.png").exists()
    settings = json.loads((out / "search.json").read_text())
    assert settings["sampler"] == "random" and settings["seed"] == 4

    # A changed configuration cannot resume; the same one adds trials.
    line = _one_line_error(capsys, ["search", "--resume", str(out), "--lr", "0.1"])
    assert "--lr cannot change when resuming" in line
    assert main(["search", "--resume", str(out), "--trials", "2", "--workers", "0"]) == 0
    assert "study: 5 trials (5 complete)" in capsys.readouterr().out
    rows = (out / "trials.csv").read_text().splitlines()[1:]
    assert len(rows) == 5
    again = {r.split(",")[1]: r for r in rows}
    for number, row in first.items():  # the first three trials are unchanged
        assert again[number].split(",")[1:] == row.split(",")[1:]


def test_search_help_lists_config_fields_from_runconfig(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    for name in RunConfig.FIELDS:
        if RunConfig.FIELDS[name].type is not dict:
            assert f"--{name.replace('_', '-')}" in text
    for flag in ("--sampler", "--trials", "--workers", "--scheduler", "--pruner", "--resume",
                 "--space", "--space-file"):
        assert flag in text


def _study_trials(path):
    import optuna

    from dlscratch.hpo import open_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return open_study(path, "dlscratch", create=False).get_trials()


@needs_mnist
def test_ctrl_c_keeps_finished_trials_and_says_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "dlscratch.cli", "search", *BASE, "--out", str(out),
            "--trials", "200", "--sampler", "random", "--pruner", "none", "--seed", "1",
            "--space", "lr=1e-3:1e-1:log"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "study.log").is_file():
                done = [t for t in _study_trials(out / "study.log")
                        if t.state.name == "COMPLETE"]
                if len(done) >= 2:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"continue with: dlscratch search --resume {out} --trials N" in stderr
    trials = _study_trials(out / "study.log")
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert 2 <= len(done) < 200
    assert f"interrupted: {len(done)} trials of this run finished and are kept" in stderr
    assert not [t for t in trials if t.state.name == "RUNNING"]
    # The trial Ctrl-C stopped, if any, is recorded as failed, saying so.
    assert all(t.user_attrs.get("state") == "interrupted" for t in trials
               if t.state.name == "FAIL")
    rows = (out / "trials.csv").read_text().splitlines()[1:]
    assert len(rows) == len(trials)
    before = {t.number: (t.params, t.value) for t in done}

    assert subprocess.run(
        [sys.executable, "-m", "dlscratch.cli", "search", "--resume", str(out), "--trials", "2",
         "--workers", "0"], env=env, capture_output=True, text=True, timeout=120
    ).returncode == 0
    after = _study_trials(out / "study.log")
    assert len(after) == len(trials) + 2
    assert {t.number: (t.params, t.value) for t in after if t.number in before} == before
    new = after[-2:]
    assert all(t.state.name == "COMPLETE" for t in new)
    assert all(t.params not in [p for p, _ in before.values()] for t in new)


def test_adamw_and_leaky_relu_are_searchable_like_any_registered_entry(capsys, tmp_path):
    out = tmp_path / "run"
    base = [a for a in BASE]
    base[base.index("sgd")] = "adamw"
    argv = ["search", *base, "--activation", "leaky_relu", "--out", str(out), "--trials", "3",
            "--sampler", "random", "--pruner", "none",
            "--space", "opt.weight_decay=1e-4:1e-1:log", "--space", "act.alpha=0.01:0.3"]
    assert main(argv) == 0
    rows = (out / "trials.csv").read_text().splitlines()
    assert "opt.weight_decay" in rows[0] and "act.alpha" in rows[0] and len(rows) == 4
    best = RunConfig.from_dict(json.loads((out / "best.json").read_text()))
    assert best.optimizer == "adamw" and best.activation == "leaky_relu"
    assert 1e-4 <= best.optimizer_options["weight_decay"] <= 1e-1
    assert 0.01 <= best.activation_options["alpha"] <= 0.3
    # the best configuration trains as it is
    assert main(["train", "--config", str(out / "best.json"), "--no-progress",
                 "--out", str(tmp_path / "best")]) == 0
