"""Atomic output: a file appears complete, with the usual permissions, or not at all."""

import json
import os
import stat

import numpy as np
import pytest

from dlscratch.fileio import (
    atomic_path,
    default_file_mode,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        assert default_file_mode() == 0o644
        write_text(tmp_path / "a.txt", "hello")
        write_bytes(tmp_path / "b.bin", b"\x00\x01")
        write_json(tmp_path / "c.json", {"x": 1})
        write_csv(tmp_path / "d.csv", ["a", "b"], [[1, 2]])
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin", "c.json", "d.csv"):
        assert _mode(tmp_path / name) == 0o644, name


def test_failure_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new conte")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_temporary_keeps_the_suffix_so_format_by_extension_works(tmp_path):
    with atomic_path(tmp_path / "arrays.npz") as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, w=np.arange(3))
    with np.load(tmp_path / "arrays.npz") as data:
        np.testing.assert_array_equal(data["w"], [0, 1, 2])


def test_json_converts_numpy_values_and_rejects_the_unknown(tmp_path):
    write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "w": np.arange(2), "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.5, "w": [0, 1], "n": 3}
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
