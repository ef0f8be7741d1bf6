"""Hostile run configurations, search settings and run folders: one line, exit 2, nothing
written, no hang; listing run folders survives any file in them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dlscratch.cli import main

DEEP = "[" * 100_000 + "]" * 100_000


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (DEEP, "nested"),
        ('{"epochs": 1e999}', "epochs"),
        ('{"hidden": [100000, 100000]}', "parameters"),
        ('{"optimizer": "adam", "lr": "fast"}', "lr"),
        ("x" * 3_000_000, "larger than"),
        (b"\xff\xfe not utf-8", "UTF-8"),
        ('{"seed": -1}', "seed"),
    ],
)
def test_a_hostile_config_file_is_one_line_and_exit_2(tmp_path, capsys, content, words):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = tmp_path / "run"
    code = main(["train", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert words.lower() in err[0].lower(), err[0]
    assert not out.exists()


def test_a_config_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = _fifo(tmp_path / "config.json")
    proc = subprocess.run(
        [sys.executable, "-m", "dlscratch.cli", "train", "--config", str(fifo),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "settings",
    [DEEP, "[]", '{"config": {"epochs": 0}, "space": [], "sampler": "tpe", "pruner": "median",'
     ' "seed": 0}', '{"config": {}, "space": ["lr=1:0"], "sampler": "tpe", "pruner": "none",'
     ' "seed": 0}'],
)
def test_a_damaged_search_folder_does_not_resume(tmp_path, capsys, settings):
    (tmp_path / "search.json").write_text(settings)
    (tmp_path / "study.log").write_text("")
    code = main(["search", "--resume", str(tmp_path), "--workers", "0", "--trials", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err


def test_a_huge_space_file_is_refused(tmp_path, capsys):
    space = tmp_path / "space.txt"
    space.write_text("lr=1e-4:1e-1:log\n" * 200_000)
    code = main(["search", "--space-file", str(space), "--out", str(tmp_path / "s"),
                 "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "larger than" in err[0]
    assert not (tmp_path / "s").exists()


def test_listing_run_folders_survives_hostile_files(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text(json.dumps({"epochs": 1}))
    (good / "metrics.json").write_text(json.dumps({"final": {"test_acc": 0.5}}))
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "config.json").write_text(DEEP)
    (deep / "metrics.json").write_text(DEEP)
    (deep / "history.csv").write_text("epoch,val_acc\n" + "1,x\n" * 10)
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    _fifo(pipe / "config.json")
    _fifo(pipe / "metrics.json")
    proc = subprocess.run(
        [sys.executable, "-m", "dlscratch.cli", "runs", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "good" in proc.stdout
