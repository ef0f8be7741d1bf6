"""Download dataset files from public mirrors, verified and written atomically.

Each file is fetched into a hidden temporary file in the destination folder,
checked (complete transfer, valid gzip, MD5), and only then moved onto its
final name with ``os.replace``. An interrupted or bad download therefore never
leaves a file under the real name.

:data:`MIRRORS` and :data:`CHECKSUMS` are plain module-level dicts; tests and
users behind a proxy or with a private mirror can replace entries, or pass
``mirrors=`` / ``checksums=`` explicitly.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import itertools
import os
import socket
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from dlscratch.data.idx import DataError
from dlscratch.fileio import atomic_path

__all__ = [
    "CHECKSUMS",
    "FILENAMES",
    "MIRRORS",
    "Checksum",
    "ChecksumError",
    "DownloadError",
    "download_dataset",
    "download_file",
]

# The four files of MNIST and Fashion-MNIST (identical names and format).
FILENAMES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}


@dataclass(frozen=True)
class Checksum:
    """Expected MD5s of one file.

    Attributes
    ----------
    raw : str or None
        MD5 of the decompressed IDX bytes (independent of gzip wrapping).
    gz : str or None
        MD5 of the ``.gz`` file as published on the mirrors.
    """

    raw: str | None = None
    gz: str | None = None


# The decompressed MD5s are what matter: a re-compressed copy (Debian's
# dataset-fashion-mnist package re-gzips the files) has other .gz MD5s but the same data.
CHECKSUMS: dict[str, dict[str, Checksum]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": Checksum(
            raw="6bbc9ace898e44ae57da46a324031adb", gz="f68b3c2dcbeaaa9fbdd348bbdeb94873"
        ),
        "train-labels-idx1-ubyte.gz": Checksum(
            raw="a25bea736e30d166cdddb491f175f624", gz="d53e105ee54ea40749a09fcbcd1e9432"
        ),
        "t10k-images-idx3-ubyte.gz": Checksum(
            raw="2646ac647ad5339dbf082846283269ea", gz="9fb629c4189551a2d022fa330f9573f3"
        ),
        "t10k-labels-idx1-ubyte.gz": Checksum(
            raw="27ae3e4e09519cfbb04c329615203637", gz="ec29112dd5afa0611ce80d1b7f02629c"
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": Checksum(
            raw="f4a8712d7a061bf5bd6d2ca38dc4d50a", gz="8d4fb7e6c68d591d4c3dfef9ec88bf0d"
        ),
        "train-labels-idx1-ubyte.gz": Checksum(
            raw="9018921c3c673c538a1fc5bad174d6f9", gz="25c81989df183df01b3e8a0aad5dffbe"
        ),
        "t10k-images-idx3-ubyte.gz": Checksum(
            raw="8181f5470baa50b63fa0f6fddb340f0a", gz="bef4ecab320f06d8554ea6380940ec79"
        ),
        "t10k-labels-idx1-ubyte.gz": Checksum(
            raw="15d484375f8d13e6eb1aabb0c3f46965", gz="bb300cfdad3c16e7a12a480ee83cd310"
        ),
    },
}

_CHUNK = 1 << 16


class DownloadError(DataError):
    """No mirror delivered the file. ``failures`` lists ``(url, reason)`` pairs."""

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures


class ChecksumError(DownloadError):
    """A mirror answered, but what it sent failed verification (and no mirror did better)."""


class _BadContent(Exception):
    """Downloaded bytes arrived complete but are not the expected file."""


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def verify_bytes(data: bytes, filename: str, checksum: Checksum | None) -> None:
    """Check downloaded file content against ``checksum``.

    The decompressed MD5 is checked when known (so any gzip wrapping is
    accepted), otherwise the MD5 of the compressed file. A ``.gz`` name must
    hold a valid gzip stream either way.

    Raises
    ------
    DataError
        Invalid gzip or an MD5 mismatch.
    """
    raw = data
    if filename.endswith(".gz"):
        try:
            raw = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"not a valid gzip file ({exc})") from None
    if checksum is None:
        return
    if checksum.raw is not None:
        got = _md5(raw)
        if got != checksum.raw:
            raise DataError(f"MD5 of decompressed data is {got}, expected {checksum.raw}")
    elif checksum.gz is not None and filename.endswith(".gz"):
        got = _md5(data)
        if got != checksum.gz:
            raise DataError(f"MD5 is {got}, expected {checksum.gz}")


def _fetch(url: str, dest: Path, *, timeout: float, progress: bool, desc: str) -> None:
    """Stream ``url`` into the file ``dest``; raise if the transfer is incomplete."""
    from dlscratch import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"dlscratch/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with open(dest, "wb") as out, _progress_bar(total, desc, progress) as bar:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not enabled,
        leave=False,
    )


def _transient(exc: BaseException) -> bool:
    """Whether retrying the same URL could help."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return isinstance(
        exc, (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError)
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early ({exc.expected} bytes missing)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def download_file(
    filename: str,
    dest_dir: str | os.PathLike,
    mirrors: list[str],
    *,
    checksum: Checksum | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``filename`` from the first mirror that serves it intact.

    Parameters
    ----------
    filename : str
        Name of the file on the mirrors and on disk.
    dest_dir : str or os.PathLike
        Folder to put it in (created if needed).
    mirrors : list of str
        Base URLs, tried in order; ``base.rstrip("/") + "/" + filename`` is fetched.
    checksum : Checksum, optional
        Expected MD5s; without one only the gzip stream is checked.
    timeout : float
        Socket timeout in seconds for each request.
    retries : int
        Extra attempts per mirror after a transient failure (connection
        error, timeout, transfer cut short, HTTP 5xx).
    backoff : float
        Seconds to wait before the first retry; doubles each time.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    pathlib.Path
        ``dest_dir / filename``, complete and verified.

    Raises
    ------
    ChecksumError
        Some mirror delivered content that failed verification and none
        delivered the right file.
    DownloadError
        Every mirror failed (unreachable, HTTP error, transfer cut short).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    final = Path(dest_dir) / filename
    failures: list[tuple[str, str]] = []
    bad_content = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        for attempt in range(retries + 1):
            try:
                # creates dest_dir; the .part file is removed unless fetched and verified
                with atomic_path(final, suffix=".part") as tmp:
                    _fetch(url, tmp, timeout=timeout, progress=progress, desc=filename)
                    try:
                        verify_bytes(tmp.read_bytes(), filename, checksum)
                    except DataError as exc:
                        raise _BadContent(str(exc)) from None
                return final
            except _BadContent as exc:
                bad_content = True
                failures.append((url, str(exc)))
                break  # the mirror serves the wrong file; retrying will not help
            except Exception as exc:
                failures.append((url, _describe(exc)))
                if not _transient(exc) or attempt == retries:
                    break
                time.sleep(backoff * 2**attempt)
    lines = _failure_lines(failures)
    if bad_content:
        raise ChecksumError(
            f"{filename}: no mirror served a file that passes verification:\n{lines}", failures
        )
    raise DownloadError(f"{filename}: download failed from every mirror:\n{lines}", failures)


def _failure_lines(failures) -> str:
    """One line per mirror and reason; repeated attempts with the same outcome are counted."""
    lines = []
    for (url, reason), attempts in itertools.groupby(failures):
        times = len(list(attempts))
        lines.append(f"  {url}: {reason}" + (f" ({times} attempts)" if times > 1 else ""))
    return "\n".join(lines) or "  (no mirrors given)"


def download_dataset(
    dataset: str,
    dest_dir: str | os.PathLike,
    *,
    mirrors: list[str] | None = None,
    checksums: dict[str, Checksum] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download the four files of ``dataset`` that ``dest_dir`` does not already hold.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
        Which dataset; selects the default mirrors and checksums.
    dest_dir : str or os.PathLike
        Folder for the files.
    mirrors : list of str, optional
        Base URLs to use instead of ``MIRRORS[dataset]``.
    checksums : dict, optional
        ``{filename: Checksum}`` to use instead of ``CHECKSUMS[dataset]``.
    timeout, retries, backoff, progress
        As for :func:`download_file`.

    Returns
    -------
    pathlib.Path
        ``dest_dir``.
    """
    if mirrors is None:
        if dataset not in MIRRORS:
            raise ValueError(f"no mirrors known for dataset {dataset!r}; pass mirrors=[...]")
        mirrors = MIRRORS[dataset]
    if checksums is None:
        checksums = CHECKSUMS.get(dataset, {})
    dest_dir = Path(dest_dir)
    created = not dest_dir.exists()
    try:
        for filename in FILENAMES.values():
            if (dest_dir / filename).is_file():
                continue
            download_file(
                filename,
                dest_dir,
                list(mirrors),
                checksum=checksums.get(filename),
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                progress=progress,
            )
    except BaseException:
        if created:  # nothing arrived: leave no empty folder that looks like a dataset
            with contextlib.suppress(OSError):
                dest_dir.rmdir()  # only succeeds while empty
        raise
    return dest_dir
