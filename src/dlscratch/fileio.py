"""Atomic file output: a file either appears complete or not at all.

Everything dlscratch writes (models, checkpoints, CSV, JSON, figures, cached
arrays) goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder and moved into place with
``os.replace``, which is atomic on POSIX and Windows. An exception or Ctrl-C
while writing leaves any previous file untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    ``suffix`` defaults to ``path``'s own suffix, so libraries that choose a
    format by extension (``np.savez``, matplotlib) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())  # mkstemp makes it 0600; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
