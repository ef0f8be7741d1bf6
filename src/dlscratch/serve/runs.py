"""Run folders for the web app: list them, read their history, and resolve names safely.

A *run folder* is a direct child of the runs folder holding what ``dlscratch train``
writes (``config.json``, ``metrics.json``, ``history.csv``, figures, ``model.npz``,
``checkpoint.npz``). Names and file names come from URLs, so every lookup goes
through :func:`safe_child`: one path component, no ``..``, no absolute path, and the
resolved path (symbolic links followed) must stay inside the folder it is looked up in.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from dlscratch.config import RUNS_DIR

#: The folder ``dlscratch train`` writes runs into when no ``--out`` is given.
DEFAULT_RUNS = RUNS_DIR  # the train command's default output folder
#: Files a run folder may be recognised by.
RUN_MARKERS = ("config.json", "metrics.json", "checkpoint.npz", "model.npz")
#: Figures a run folder may hold that the app serves (PNG and JPEG only: no SVG scripts).
FIGURE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: Larger JSON or CSV files in a run folder are not read (a run writes a few kB).
MAX_TEXT_BYTES = 8 * 1024 * 1024
#: The experiment report's page (``dlscratch experiment ... --out DIR`` writes ``DIR/index.html``).
REPORT_INDEX = "index.html"


class UnsafePathError(ValueError):
    """A name from a URL that would leave its folder, or that names nothing there."""


def safe_child(root: Path, name: str, *, must_exist: bool = True) -> Path:
    """``root / name`` for a single, harmless path component ``name``, resolved.

    Refused (:class:`UnsafePathError`): empty names, ``.`` and ``..``, names with a
    slash, backslash or NUL, absolute paths, hidden names (leading dot), and any
    name whose resolved path (after following symbolic links) is not inside
    ``root``. With ``must_exist`` the path must exist.
    """
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name.startswith(".")
        or any(ch in name for ch in ("/", "\\", "\0"))
        or os.path.isabs(name)
    ):
        raise UnsafePathError(
            f"invalid name {name!r}: use the plain name of an entry of the folder "
            "(no slashes, no '..', no leading dot)"
        )
    base = root.resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise UnsafePathError(
            f"{name!r} points outside {root}; links out of the folder are refused"
        )
    if must_exist and not path.exists():
        raise FileNotFoundError(f"no {name!r} in {root}")
    return path


def safe_relative(root: Path, relative: str) -> Path:
    """A file below ``root`` named by a relative URL path ``a/b/c.png``, resolved.

    Each component must pass :func:`safe_child`'s rules and the resolved file
    must be inside ``root`` (links out are refused).
    """
    parts = relative.split("/")
    base = root.resolve()
    path = base
    for part in parts:
        path = safe_child(path, part)
    if not path.is_relative_to(base):
        raise UnsafePathError(f"{relative!r} points outside {root}")
    if not path.is_file():
        raise FileNotFoundError(f"{relative!r} is not a file in {root}")
    return path


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when missing, damaged or not an object.

    Read through :func:`dlscratch.fileio.read_json`: bounded in size and nesting, and a
    FIFO or device is refused rather than waited on.
    """
    from dlscratch import fileio

    try:
        obj = fileio.read_json(path, max_bytes=MAX_TEXT_BYTES)
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in RUN_MARKERS)


def run_summary(path: Path, *, running: bool = False) -> dict:
    """What the runs table shows of one run folder: configuration, final metrics, figures."""
    config = read_json(path / "config.json") or {}
    metrics = read_json(path / "metrics.json") or {}
    if not config and isinstance(metrics.get("config"), dict):
        config = metrics["config"]
    if running:
        status = "running"
    elif metrics:
        status = "finished"
    elif (path / "checkpoint.npz").is_file():
        status = "interrupted"
    else:
        status = "incomplete"
    final = metrics.get("final") if isinstance(metrics.get("final"), dict) else {}
    mtime = max(
        (p.stat().st_mtime for p in path.iterdir() if p.is_file()),
        default=path.stat().st_mtime,
    )
    return {
        "name": path.name,
        "status": status,
        "modified": mtime,
        "config": config,
        "final": final,
        "epochs_completed": metrics.get("epochs_completed"),
        "wall_time_s": metrics.get("wall_time_s"),
        "parameters": metrics.get("parameters"),
        "has_model": (path / "model.npz").is_file(),
        "has_history": (path / "history.csv").is_file(),
        "figures": sorted(
            p.name
            for p in path.iterdir()
            if p.suffix.lower() in FIGURE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        ),
    }


def list_runs(root: Path, *, running: str | None = None) -> list[dict]:
    """Summaries of the run folders directly inside ``root``, newest first.

    Entries that are links out of ``root`` are left out. ``running`` names the
    folder of the training in progress.
    """
    if not root.is_dir():
        return []
    base = root.resolve()
    runs = []
    for entry in root.iterdir():
        if entry.name.startswith("."):
            continue
        try:
            path = entry.resolve()
        except OSError:
            continue
        if path.parent != base or not is_run_folder(path):
            continue
        try:
            runs.append(run_summary(path, running=entry.name == running))
        except OSError:  # removed while we looked
            continue
    runs.sort(key=lambda r: r["modified"], reverse=True)
    return runs


def read_history(path: Path) -> dict:
    """``history.csv`` of a run folder as ``{"columns": [...], "rows": [[...], ...]}``.

    Numbers become floats (``epoch`` and ``step`` ints); empty cells None.
    """
    file = path / "history.csv"
    if not file.is_file():
        raise FileNotFoundError(f"run {path.name!r} has no history.csv (not finished yet?)")
    if file.stat().st_size > MAX_TEXT_BYTES:
        raise ValueError(f"{file} is larger than {MAX_TEXT_BYTES} bytes; not read")
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        columns = next(reader, [])
        rows = [[_cell(col, value) for col, value in zip(columns, row)] for row in reader]
    return {"columns": columns, "rows": rows}


def _cell(column: str, value: str):
    if value == "":
        return None
    try:
        return int(value) if column in ("epoch", "step") else float(value)
    except ValueError:
        return value


def newest_model(root: Path) -> Path | None:
    """The run folder under ``root`` whose ``model.npz`` is the most recent, or None."""
    if not root.is_dir():
        return None
    base = root.resolve()
    best, best_time = None, -1.0
    for entry in root.iterdir():
        model = entry / "model.npz"
        try:
            if entry.name.startswith(".") or entry.resolve().parent != base or not model.is_file():
                continue
            mtime = model.stat().st_mtime
        except OSError:
            continue
        if mtime > best_time:
            best, best_time = entry, mtime
    return best
