"""Atomic file output and bounded JSON input.

Everything dlscratch writes (models, checkpoints, CSV, JSON, figures, cached
arrays) goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder, flushed to disk (``fsync``) and
moved into place with ``os.replace``, which is atomic on POSIX and Windows; the
folder is then synced too, so the new name survives a power cut. An exception,
Ctrl-C or even a kill while writing leaves any previous file untouched and no
partial file behind.

JSON that comes from files a user hands us (model metadata, a cache's
``meta.json``) is read by :func:`parse_json` / :func:`read_json`, which refuse
text larger or more deeply nested than a stated limit before parsing it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path

#: Default limits of :func:`read_json` / :func:`parse_json`.
JSON_MAX_BYTES = 16 * 2**20
JSON_MAX_DEPTH = 64


#: How :func:`atomic_path` names its temporary files (``.tmp-XXXXXXXX<suffix>``).
TEMP_PREFIX = ".tmp-"


def remove_temporaries(folder) -> list:
    """Remove the temporary files :func:`atomic_path` left in ``folder``; return their names.

    A writer killed between creating its temporary file and renaming it
    (SIGKILL, a power cut) leaves the file behind; the target itself is intact.
    Call this only while no other process can be writing into ``folder``
    (holding the run folder's lock, as the commands do when they claim one).
    """
    removed = []
    for entry in Path(folder).iterdir():
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    ``suffix`` defaults to ``path``'s own suffix, so libraries that choose a
    format by extension (``np.savez``, matplotlib) see the right one. The
    temporary name is short (``.tmp-XXXXXXXX<suffix>``), so any name the file
    system accepts for ``path`` works. An ``OSError`` names ``path``, not the
    temporary file.
    """
    path = Path(path)
    if suffix is None:
        suffix = path.suffix if len(path.suffix) <= 16 else ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _naming(exc, path, None) from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())  # mkstemp makes it 0600; give it the usual mode
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _naming(exc, path, tmp) from None
        raise
    _fsync(path.parent, directory=True)


def _naming(exc: OSError, path: Path, tmp: Path | None) -> OSError:
    """``exc`` with ``path`` as its file name when it named the temporary file or nothing."""
    if exc.errno is None:  # OSError("message"): say which file
        if str(path) not in str(exc):
            exc.args = (f"could not write {path}: {exc}",)
    elif exc.filename is None or (tmp is not None and str(exc.filename) == str(tmp)):
        exc.filename, exc.filename2 = str(path), None
    return exc


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk; a folder that cannot be opened is skipped."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if directory else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # e.g. Windows, where folders cannot be opened
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """Permissions a newly created file gets under the current umask (e.g. 0o644)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path, obj, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (NumPy scalars and arrays are converted)."""
    return write_text(path, json.dumps(obj, indent=indent, default=json_default) + "\n")


def write_csv(path, header, rows) -> Path:
    """Write a CSV file atomically: one ``header`` row, then ``rows``."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def save_figure(fig, path, **kwargs) -> Path:
    """Save a matplotlib figure atomically (format from ``path``'s suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return path


def json_default(obj):
    """``json.dumps(default=...)`` hook: NumPy scalars and arrays, paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# -- bounded JSON input ----------------------------------------------------------------------

def json_depth(obj) -> int:
    """Deepest nesting of lists and dicts in a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((v, depth + 1) for v in value)
    return deepest


def parse_json(
    data, source, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH
):
    """Parse JSON ``data`` (str or bytes) from ``source`` after checking its size and nesting.

    Raises ValueError naming ``source`` for text over ``max_bytes``, nested deeper
    than ``max_depth``, not UTF-8, or not JSON.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ValueError(
            f"{source}: JSON of {len(data):,} bytes is larger than the {max_bytes:,} bytes "
            "allowed; the file is damaged or not what it claims to be"
        )
    try:
        obj = json.loads(data.decode("utf-8"))
    except RecursionError:  # the parser's own guard against deep nesting
        obj, depth = None, max_depth + 1
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{source}: not valid UTF-8 JSON ({exc})") from None
    else:
        depth = json_depth(obj)
    if depth > max_depth:
        raise ValueError(
            f"{source}: JSON nested more than {max_depth} levels deep; "
            "the file is damaged or not what it claims to be"
        )
    return obj


def read_json(path, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH):
    """Read a JSON file through :func:`parse_json`, reading at most ``max_bytes + 1`` bytes.

    Only regular files are read (a FIFO or device is refused, not waited on).
    """
    path = Path(path)
    with open_regular(path) as f:
        if os.fstat(f.fileno()).st_size > max_bytes:
            raise ValueError(f"{path}: larger than the {max_bytes:,} bytes allowed for this file")
        data = f.read(max_bytes + 1)
    return parse_json(data, path, max_bytes=max_bytes, max_depth=max_depth)


def open_regular(path):
    """Open ``path`` for binary reading if it is a regular file; ValueError otherwise.

    A FIFO, socket or device given as an input file would block or never end;
    it is refused without being opened for reading (``O_NONBLOCK`` on open).
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file (a pipe or device?); pass a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
