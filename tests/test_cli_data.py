"""``dlscratch data info|show|download``, run in-process."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from dlscratch.cli import main
from dlscratch.data import download as dl
from dlscratch.data import write_idx
from shared_data import DATA_ROOT, HAVE_MNIST

PUBLISHED = dict(dl.CHECKSUMS["mnist"])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Private cache, no network; tiny sets are not compared with published checksums."""
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLSCRATCH_DATA", raising=False)
    monkeypatch.setenv("DLSCRATCH_OFFLINE", "1")
    monkeypatch.setitem(dl.CHECKSUMS, "mnist", {})
    monkeypatch.setitem(dl.CHECKSUMS, "fashion-mnist", {})


@pytest.fixture
def tiny_dir(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = (12, 12, 6, 6)
    for name, n in zip(NAMES, sizes):
        if "images" in name:
            write_idx(folder / name, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        else:
            write_idx(folder / name, (np.arange(n) % 10).astype(np.uint8))
    return folder


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST")
def test_info_on_real_mnist(capsys, monkeypatch):
    monkeypatch.setitem(dl.CHECKSUMS, "mnist", PUBLISHED)
    assert main(["data", "info", "--data-dir", str(DATA_ROOT / "mnist")]) == 0
    out = capsys.readouterr().out
    assert "train 60000, test 10000" in out
    assert out.count("md5 ok") == 4
    for count in ("5923", "6742", "980", "1135", "1009"):
        assert count in out
    assert "train-images-idx3-ubyte.gz" in out and "found via data_dir" in out

    assert main(["data", "info", "--data-dir", str(DATA_ROOT), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["class_counts"]["test"][:3] == [980, 1135, 1032]
    assert {f["checksum"] for f in info["files"].values()} == {"ok"}


def test_info_on_tiny_fashion_set_shows_class_names(tiny_dir, capsys):
    assert main(["data", "info", "--dataset", "fashion-mnist", "--data-dir", str(tiny_dir)]) == 0
    out = capsys.readouterr().out
    assert "dataset   fashion-mnist" in out and "9 Ankle boot" in out
    assert "train 12, test 6" in out


def test_show_writes_a_png(tiny_dir, tmp_path, capsys):
    out_file = tmp_path / "grid.png"
    rc = main(
        [
            "data",
            "show",
            "--data-dir",
            str(tiny_dir),
            "--index",
            "1",
            "--count",
            "5",
            "--split",
            "test",
            "--out",
            str(out_file),
        ]
    )
    assert rc == 0
    width, height = png_size(out_file)
    assert width > height > 0  # one row of five
    assert "5 mnist test images from #1" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "grid.png", "tiny"]


def test_show_default_output_name(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "show", "--data-dir", str(tiny_dir)]) == 0
    png_size(tmp_path / "mnist-train-0.png")


def test_show_clamps_a_count_past_the_end_and_rejects_a_bad_index(tiny_dir, capsys, tmp_path):
    out = tmp_path / "end.png"
    argv = ["data", "show", "--data-dir", str(tiny_dir), "--index", "10", "--count", "4"]
    rc = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and "showing the last 2" in captured.err and "(2 mnist train" in captured.out
    png_size(out)
    assert main([*argv, "--out", str(out)]) == 2  # an existing file needs --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    rc = main(["data", "show", "--data-dir", str(tiny_dir), "--index", "99"])
    assert rc == 2
    assert "--index 99 is out of range" in capsys.readouterr().err


def test_show_into_missing_folder_is_a_bad_path(tiny_dir, tmp_path, capsys):
    rc = main(["data", "show", "--data-dir", str(tiny_dir), "--out", str(tmp_path / "no/x.png")])
    assert rc == 2  # a path the user gave that does not exist
    assert "does not exist" in capsys.readouterr().err


def test_info_when_nothing_is_found(tmp_path, capsys):
    rc = main(["data", "info", "--data-dir", str(tmp_path / "empty")])
    assert rc == 2  # DataNotFoundError is a ValueError: bad input, not an I/O failure
    err = capsys.readouterr().err
    assert "mnist data files not found" in err and str(tmp_path / "empty") in err


@pytest.mark.parametrize("action", ["info", "show", "download"])
def test_unknown_dataset_exits_2_and_lists_the_valid_names(tiny_dir, capsys, action):
    with pytest.raises(SystemExit) as exc:
        main(["data", action, "--dataset", "cifar"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'cifar'" in err and "mnist" in err and "fashion-mnist" in err


def test_download_reports_local_copy(tiny_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path))
    (tmp_path / "mnist").symlink_to(tiny_dir)
    assert main(["data", "download", "--no-progress"]) == 0
    assert "already present in" in capsys.readouterr().out


def test_data_without_action_prints_help(capsys):
    assert main(["data"]) == 2
    assert "info" in capsys.readouterr().out
