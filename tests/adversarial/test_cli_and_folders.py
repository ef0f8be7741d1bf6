"""The command line's one error boundary, exclusive run folders, and hostile cache sidecars."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlscratch import cli
from dlscratch.cli import options
from dlscratch.cli import verify as verify_cli


def _run_with(monkeypatch, capsys, exc):
    def fail(args):
        raise exc

    monkeypatch.setattr(verify_cli, "run", fail)
    monkeypatch.delenv("DLSCRATCH_DEBUG", raising=False)
    code = cli.main(["verify"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (ValueError("bad.npz: entry 'W1' is corrupt"), 2, "error: bad.npz"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.npz"), 2, "x.npz"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "runs"), 2, "runs"),
        (RecursionError("maximum recursion depth exceeded"), 2, "nested too deeply"),
        (OverflowError("cannot convert float infinity to integer"), 2, "too large"),
        (zipfile.BadZipFile("File is not a zip file"), 2, "not a zip file"),
        (pickle.UnpicklingError("invalid load key"), 2, "invalid load key"),
        (EOFError("Ran out of input"), 2, "Ran out of input"),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 1, "check permissions"),
        (OSError(errno.ENOSPC, "No space left on device", "m.npz"), 1, "free some space"),
        (MemoryError(), 1, "not enough memory"),
        (KeyError("best"), 1, "a bug in dlscratch"),
        (AttributeError("'list' object has no attribute 'get'"), 1, "DLSCRATCH_DEBUG=1"),
    ],
)
def test_every_failure_ends_as_one_line_and_the_right_status(monkeypatch, capsys, exc, code, words):
    got, err = _run_with(monkeypatch, capsys, exc)
    assert got == code
    assert words in err and "Traceback" not in err
    assert err.startswith("dlscratch verify: ") and err.count("\n") == 1


def test_a_bug_says_so_and_debug_shows_the_traceback(monkeypatch, capsys):
    got, err = _run_with(monkeypatch, capsys, KeyError("x"))
    assert "internal error: KeyError" in err and "report it to the project" in err
    monkeypatch.setenv("DLSCRATCH_DEBUG", "1")
    monkeypatch.setattr(verify_cli, "run", lambda args: {}["x"])
    with pytest.raises(KeyError):
        cli.main(["verify"])


# -- run folders ---------------------------------------------------------------------------


def test_a_folder_is_claimed_once_and_released(tmp_path):
    out = tmp_path / "run"
    options.choose_output_folder(out, "x", overwrite=False)
    options.claim_output_folder(out, ("model.npz",))
    try:
        assert (out / options.LOCK_NAME).is_file()
        with pytest.raises(ValueError, match="already in use"):
            options.claim_output_folder(out)
        # another process cannot take it either
        code = (
            "import sys; from pathlib import Path; from dlscratch.cli import options\n"
            "try:\n options.claim_output_folder(Path(sys.argv[1]), resume=True)\n"
            "except ValueError as e: print(e)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True
        )
        assert f"in use by another dlscratch run (process {os.getpid()})" in other.stdout
    finally:
        options.release_output_folders()
    assert not out.exists()  # created by the claim, left empty: removed again


def test_a_lock_of_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "run"
    code = (
        "import os, sys; from pathlib import Path; from dlscratch.cli import options\n"
        "options.claim_output_folder(Path(sys.argv[1]), resume=True)\n"
        "(Path(sys.argv[1]) / 'checkpoint.npz').write_bytes(b'x')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=False)
    assert (out / options.LOCK_NAME).exists()  # left behind by the killed process
    options.claim_output_folder(out, resume=True)
    options.release_output_folders()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz"]


def test_the_folder_is_checked_again_once_locked(tmp_path):
    out = tmp_path / "run"
    options.choose_output_folder(out, "x", overwrite=False)  # empty now...
    out.mkdir()
    (out / "model.npz").write_bytes(b"another run's")  # ...filled meanwhile
    with pytest.raises(ValueError, match="already exists and is not empty"):
        options.claim_output_folder(out, ("model.npz",))
    assert (out / "model.npz").read_bytes() == b"another run's"
    assert not (out / options.LOCK_NAME).exists()


def test_prepare_output_folder_gives_two_default_runs_two_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = options.prepare_output_folder(None, "mnist", overwrite=False)
    b = options.prepare_output_folder(None, "mnist", overwrite=False)
    try:
        assert a != b and a.is_dir() and b.is_dir()
    finally:
        options.release_output_folders()


def test_evaluate_does_not_replace_an_existing_image_without_overwrite(tmp_path, capsys):
    from dlscratch.io import save_model
    from dlscratch.nets import MultiLayerNet

    model = save_model(tmp_path / "m.npz", MultiLayerNet(784, [10], 10, rng=0))
    png = tmp_path / "cm.png"
    png.write_bytes(b"precious")
    code = cli.main(["evaluate", "--model", str(model), "--out", str(png), "--limit", "50"])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and png.read_bytes() == b"precious"


def test_evaluate_refuses_class_names_that_do_not_fit(tmp_path):
    from dlscratch.cli.evaluate import load_classifier
    from dlscratch.io import save_model
    from dlscratch.nets import MultiLayerNet

    net = MultiLayerNet(784, [10], 10, rng=0)
    path = save_model(tmp_path / "m.npz", net, metadata={"dataset": {"class_names": ["a"]}})
    with pytest.raises(ValueError, match="names 1 classes but the network has 10 outputs"):
        load_classifier(path)
    path = save_model(tmp_path / "m.npz", net, metadata={"dataset": ["mnist"]})
    with pytest.raises(ValueError, match="'dataset' must be a dict"):
        load_classifier(path)


MNIST = Path(os.environ.get("DLSCRATCH_DATA", "/work/shared/datasets")) / "mnist"


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_dir(), reason="needs MNIST")
def test_two_runs_into_one_folder_at_once_exactly_one_wins(tmp_path):
    out = tmp_path / "same"
    argv = [
        sys.executable,
        "-m",
        "dlscratch.cli",
        "train",
        "--limit",
        "200",
        "--epochs",
        "1",
        "--val-split",
        "0",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by another dlscratch run" in loser or "already exists" in loser
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"] == config  # one run's files, not a mix
    assert not (out / options.LOCK_NAME).exists()


# -- the dataset cache's sidecar -------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"version": ' + b"9" * 10_000 + b"}",
        json.dumps({"version": 1, "arrays": [1, 2]}).encode(),
        b"\xff\xfe",
        b" " * (2 * 2**20),
    ],
    ids=["deep", "long-int", "wrong-types", "not-utf8", "too-large"],
)
def test_a_hostile_cache_sidecar_is_ignored_and_rebuilt(tmp_path, monkeypatch, content):
    from dlscratch.data import idx, load_mnist

    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DLSCRATCH_OFFLINE", "1")
    from dlscratch.data import download as download_mod

    monkeypatch.setitem(download_mod.CHECKSUMS, "mnist", {})
    data = tmp_path / "d"
    data.mkdir()
    rng = np.random.default_rng(0)
    names = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(10) % 10).astype(np.uint8),
    }
    for name, array in names.items():
        idx.write_idx(data / name, array)
    (x, t), _ = load_mnist(data_dir=data, normalize=False)
    for sidecar in (tmp_path / "cache").rglob("meta.json"):
        sidecar.write_bytes(content)
    (x2, t2), _ = load_mnist(data_dir=data, normalize=False)  # no error: rebuilt
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(t2, t)
