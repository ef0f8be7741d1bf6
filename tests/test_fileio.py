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


def test_a_name_at_the_file_systems_limit_works(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    target = tmp_path / ("m" * (limit - 4) + ".npz")
    with atomic_path(target) as tmp:
        assert len(tmp.name) < 40
        np.savez(tmp, w=np.arange(2))
    assert target.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_errors_name_the_target_not_the_temporary(tmp_path):
    target = tmp_path / "model.npz"

    def fail(tmp):
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            fail(tmp)
    assert str(target) in str(info.value) and ".tmp-" not in str(info.value)
    with pytest.raises(OSError, match="could not write .*model.npz: disk full"):
        with atomic_path(target):
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_the_file_and_its_folder_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    import dlscratch.fileio as fileio

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: events.append("replace") or
                        real_replace(a, b))
    write_text(tmp_path / "a.txt", "x")
    assert events == ["fsync", "replace", "fsync"]


def test_json_input_is_bounded_in_size_and_depth(tmp_path):
    from dlscratch.fileio import parse_json, read_json

    assert parse_json(b'{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        parse_json(b"[" * 1_000_000 + b"]" * 1_000_000, "deep.json")
    with pytest.raises(ValueError, match="nested more than 3 levels"):
        parse_json(b"[[[[1]]]]", "x", max_depth=3)
    with pytest.raises(ValueError, match="big.json: larger than the 10 bytes"):
        (tmp_path / "big.json").write_text("[" + "1," * 10 + "1]")
        read_json(tmp_path / "big.json", max_bytes=10)
    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        parse_json(b"\xff", "x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="not a regular file"):
        read_json(tmp_path / "fifo")
