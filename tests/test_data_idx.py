"""IDX reader/writer: round trips, and rejection of damaged or mislabelled files."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from dlscratch.data import DataError, read_idx, write_idx
from dlscratch.data.idx import atomic_write, parse_idx
from shared_data import MNIST_DIR


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((5, 4, 3)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"a{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    raw = gzip.decompress(path.read_bytes()) if suffix.endswith(".gz") else path.read_bytes()
    assert raw[:4] == bytes(
        [
            0,
            0,
            {"uint8": 8, "int8": 9, "int16": 11, "int32": 12, "float32": 13, "float64": 14}[dtype],
            3,
        ]
    )


def test_round_trip_1d_and_header_layout(tmp_path):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    path = write_idx(tmp_path / "labels-idx1-ubyte", labels)
    assert path.read_bytes() == b"\x00\x00\x08\x01\x00\x00\x00\x05" + labels.tobytes()
    np.testing.assert_array_equal(read_idx(path), labels)


def test_write_leaves_no_temp_files_and_uses_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_idx(tmp_path / "x.gz", np.zeros((2, 2), np.uint8))
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"]
    assert (tmp_path / "x.gz").stat().st_mode & 0o777 == 0o644


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype int64"):
        write_idx(tmp_path / "a.idx", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "a.idx", np.uint8(3))
    assert not list(tmp_path.iterdir())


def test_truncated_data(tmp_path):
    data = _idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated data.*7740 bytes"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "h.idx"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match=r"h\.idx: truncated header: 3 dimensions need 16 bytes"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(_idx_bytes(np.arange(4, dtype=np.uint8)) + b"xx")
    with pytest.raises(DataError, match=r"t\.idx: 2 unexpected trailing bytes"):
        read_idx(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "m.idx"
    path.write_bytes(b"\x08\x03\x00\x00" + bytes(16))
    with pytest.raises(DataError, match=r"m\.idx: bad magic number 0x08030000"):
        read_idx(path)


def test_unknown_type_code(tmp_path):
    path = tmp_path / "c.idx"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match=r"c\.idx: unknown IDX type code 0x07"):
        read_idx(path)


def test_gzip_data_under_plain_name_gets_a_hint(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(3, dtype=np.uint8))))
    with pytest.raises(DataError, match="looks gzip-compressed"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    blob = gzip.compress(_idx_bytes(np.arange(5000, dtype=np.uint8) % 7))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: truncated gzip stream"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    blob = bytearray(gzip.compress(_idx_bytes(np.arange(5000, dtype=np.uint8) % 7)))
    blob[-8] ^= 0xFF  # damage the CRC32 in the gzip trailer
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"bad\.gz: corrupt gzip data \(CRC check failed"):
        read_idx(path)


def test_plain_bytes_under_gz_name(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(_idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"plain\.gz: not a gzip file"):
        read_idx(path)


def test_data_error_is_value_error():
    with pytest.raises(ValueError, match="x: bad magic number 0x01020304") as info:
        parse_idx(b"\x01\x02\x03\x04", "x")
    assert isinstance(info.value, DataError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


@pytest.mark.skipif(not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(), reason="no MNIST")
def test_reads_real_mnist_test_labels():
    labels = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
