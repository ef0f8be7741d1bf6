"""Read and write IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimension sizes, then the array data in C order and
big-endian byte order. Files whose name ends in ``.gz`` are gzip-compressed.

Every problem with a file (bad gzip stream, wrong magic number, truncated or
overlong data) raises :class:`DataError` with a message that names the file and
says what was wrong.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from dlscratch.fileio import atomic_path

__all__ = [
    "DataError",
    "DataNotFoundError",
    "IDX_DTYPES",
    "atomic_write",
    "decompress_idx",
    "parse_idx",
    "read_idx",
    "read_idx_bytes",
    "write_idx",
]


class DataError(ValueError):
    """A data file or cache is malformed, corrupt, or not what it claims to be."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are in none of the places searched (and could not be downloaded)."""


# IDX type code -> big-endian numpy dtype, as defined by the format.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_BY_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip_name(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(".gz")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; move it onto ``path`` only on success.

    Built on :func:`dlscratch.fileio.atomic_path`: ``path`` is either the old
    file or the complete new one, never a partial write. The data are flushed
    to disk before the move.
    """
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


#: Largest IDX content read (MNIST's biggest file is 47 MB); larger headers are refused.
MAX_IDX_BYTES = 512 * 2**20


def read_idx_bytes(path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """Return the (decompressed) bytes of an IDX file, at most ``max_bytes`` of them.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; a name ending in ``.gz`` is gunzipped.
    max_bytes : int
        Refuse (DataError) files or headers declaring more than this.

    Raises
    ------
    DataError
        The gzip stream is corrupt or truncated, or the content is too large.
    OSError
        The file cannot be opened.
    """
    return decompress_idx(read_file_bytes(path, max_bytes=max_bytes), path, max_bytes=max_bytes)


def read_file_bytes(path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """The bytes of the regular file ``path`` as stored (no decompression), at most
    ``max_bytes``: pipes and devices are refused, and so is a larger file, before reading."""
    from dlscratch.fileio import open_regular

    try:
        with open_regular(path) as f:
            too_big = os.fstat(f.fileno()).st_size > max_bytes
            data = b"" if too_big else f.read(max_bytes + 1)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if too_big or len(data) > max_bytes:
        raise DataError(
            f"{path}: larger than {max_bytes:,} bytes, more than an IDX dataset file of "
            "MNIST's kind holds; is it the right file?"
        )
    return data


def decompress_idx(
    data: bytes, path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES
) -> bytes:
    """Gunzip ``data``, the content of the file ``path``, when its name ends in ``.gz``.

    For callers that need the file's own bytes too (to hash them, say), so the
    file is read only once. Decompression is bounded by the size the IDX
    header declares (checked against ``max_bytes`` first): a gzip bomb stops
    after one byte more than the header promised. Raises :class:`DataError`
    like :func:`read_idx_bytes`.
    """
    if not _is_gzip_name(path):
        return data
    if not data.startswith(_GZIP_MAGIC):
        raise DataError(f"{path}: not a gzip file (name ends in .gz but no gzip header)")
    import io

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            head = stream.read(4)
            if len(head) == 4 and head[0] == 0 and head[1] == 0:
                head += stream.read(4 * head[3])
            declared = _declared_size(head, path)
            if declared is None:  # not an IDX header: parse_idx says what is wrong
                return head + stream.read(64)
            if declared > max_bytes:
                raise DataError(
                    f"{path}: the IDX header declares {declared:,} bytes, more than the "
                    f"{max_bytes:,} allowed; the file is damaged or not a dataset file"
                )
            return head + stream.read(declared - len(head) + 1)  # +1: trailing data shows
    except EOFError as exc:
        raise DataError(f"{path}: truncated gzip stream ({exc})") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None


def _declared_size(head: bytes, path) -> int | None:
    """Total bytes (header included) an IDX header declares; None if ``head`` is no header."""
    if len(head) < 4 or head[0] or head[1] or head[2] not in IDX_DTYPES or head[3] == 0:
        return None
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
    return 4 + 4 * ndim + math.prod(shape) * IDX_DTYPES[head[2]].itemsize


def parse_idx(data: bytes | bytearray | memoryview, source: str | os.PathLike = "<bytes>"):
    """Decode IDX bytes into an array.

    Parameters
    ----------
    data : bytes-like
        Uncompressed IDX content.
    source : str or os.PathLike
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        Writable, native-byte-order array with the shape given by the header
        (for example uint8 ``(60000, 28, 28)`` for MNIST training images).

    Raises
    ------
    DataError
        Bad magic number, unknown type code, or data length that does not match
        the dimensions.
    """
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise DataError(f"{source}: too short for an IDX file ({len(view)} bytes, no header)")
    zero1, zero2, code, ndim = view[0], view[1], view[2], view[3]
    if zero1 or zero2:
        magic = bytes(view[:4]).hex()
        hint = " (looks gzip-compressed: name it *.gz)" if bytes(view[:2]) == _GZIP_MAGIC else ""
        raise DataError(
            f"{source}: bad magic number 0x{magic}; an IDX file starts with two zero bytes{hint}"
        )
    if code not in IDX_DTYPES:
        raise DataError(
            f"{source}: unknown IDX type code 0x{code:02x} "
            f"(valid: {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})"
        )
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(view) < header_len:
        raise DataError(
            f"{source}: truncated header: {ndim} dimensions need {header_len} bytes, "
            f"file has {len(view)}"
        )
    shape = struct.unpack(f">{ndim}I", view[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    found = len(view) - header_len
    if found < expected:
        raise DataError(
            f"{source}: truncated data: header says shape {shape} of {dtype.name} "
            f"({expected} bytes), file has {found} bytes after the header"
        )
    if found > expected:
        raise DataError(
            f"{source}: {found - expected} unexpected trailing bytes after the data "
            f"of shape {shape} (wrong header or concatenated files?)"
        )
    array = np.frombuffer(view, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if the name ends in ``.gz``).

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        Array with the file's shape and dtype, e.g. uint8 ``(60000, 28, 28)``.

    Raises
    ------
    DataError
        Corrupt gzip, bad magic number, truncated or overlong data.
    FileNotFoundError
        No such file.
    """
    return parse_idx(read_idx_bytes(path), path)


def _idx_code(dtype: np.dtype) -> int:
    code = _CODE_BY_KIND.get((dtype.kind, dtype.itemsize))
    if code is None:
        raise ValueError(
            f"IDX cannot store dtype {dtype}; use uint8, int8, int16, int32, float32 or float64"
        )
    return code


def write_idx(path: str | os.PathLike, array, *, compresslevel: int = 6) -> Path:
    """Write an array as an IDX file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; a name ending in ``.gz`` is gzip-compressed.
    array : array_like
        At least 1-D, of dtype uint8, int8, int16, int32, float32 or float64;
        each dimension below 2**32.
    compresslevel : int
        gzip level (1-9) for ``.gz`` names.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unsupported dtype, 0-d array, or a dimension too large for IDX.
    """
    arr = np.asarray(array)
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX stores arrays of 1 to 255 dimensions, got {arr.ndim}")
    if any(n >= 2**32 for n in arr.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {arr.shape}")
    code = _idx_code(arr.dtype)
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    payload = header + body
    if _is_gzip_name(path):
        payload = gzip.compress(payload, compresslevel=compresslevel, mtime=0)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(payload)
    return path
