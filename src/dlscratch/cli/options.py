"""What the subcommands share on their command lines: argument types and common options.

Each argument type returns the parsed value or raises ``argparse.ArgumentTypeError``
with a message that says what is valid; argparse turns it into ``usage: ...`` plus the
message, and exit status 2.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import os
from pathlib import Path

from dlscratch.config import RUNS_DIR
from dlscratch.data.mnist import DATASETS
from dlscratch.fileio import TEMP_PREFIX, remove_temporaries


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer (>= 1)")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def number(text: str) -> float:
    """Any finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (e.g. 0.001), got {text}")
    return value


def add_dataset_options(parser, *, default: str | None = "mnist", help: str | None = None) -> None:
    """``--dataset`` (mnist or fashion-mnist) and ``--data-dir``."""
    parser.add_argument(
        "--dataset",
        type=str.lower,
        choices=DATASETS,
        default=default,
        help=help or f"{' or '.join(DATASETS)} (default {default})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding the four IDX files (default: $DLSCRATCH_DATA/<dataset>, "
        "then the user cache, then a download)",
    )


def add_model_option(parser) -> None:
    """``--model RUN``: what evaluate and predict classify with."""
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="RUN",
        help="a run folder (with model.npz), a .npz model file, or the book's .pkl weights",
    )


#: The lock file a command holds in its output folder while it runs.
LOCK_NAME = ".dlscratch.lock"

#: Folders this process holds: resolved path -> (lock file descriptor, created the folder?).
_CLAIMS: dict = {}
#: What :func:`choose_output_folder` was told for each folder (``overwrite``), so that
#: :func:`claim_output_folder` can check again once it holds the lock.
_CHOSEN: dict = {}


def choose_output_folder(
    out: Path | None, default_name: str, *, overwrite: bool, hint: str = ""
) -> Path:
    """The folder a command will write into, checked now and claimed later.

    ``out`` None: ``runs/<time>-<default_name>`` (``-2``, ``-3``, ... if taken).
    An existing non-empty folder is refused unless ``overwrite``; ``hint`` is
    added to the refusal (e.g. how to resume). Nothing is created here, so a
    command that fails before its first result leaves no empty folder behind:
    call :func:`claim_output_folder` before writing (it checks again, holding
    the folder's lock, so two runs started together cannot both pass).
    """
    if out is None:
        import datetime

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = RUNS_DIR / f"{stamp}-{default_name}"
        base, n = out, 2
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
    _check_free(out, overwrite, hint)
    _CHOSEN[_key(out)] = (bool(overwrite), hint)
    return out


def _key(out: Path) -> str:
    return os.path.abspath(out)


def _check_free(out: Path, overwrite: bool, hint: str = "") -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    leftovers = (LOCK_NAME, TEMP_PREFIX)  # a lock, a killed writer's temporary files
    if out.is_dir() and not overwrite and any(
        not p.name.startswith(leftovers) for p in out.iterdir()
    ):
        raise ValueError(
            f"output folder {out} already exists and is not empty; choose another --out, "
            f"{hint}or pass --overwrite to replace its files"
        )


def claim_output_folder(
    out: Path, owned_files=(), *, overwrite: bool | None = None, resume: bool = False
) -> Path:
    """Claim ``out`` for this process before writing into it; return it.

    Creates the folder, then takes its lock (``.dlscratch.lock``, an exclusive
    ``flock`` held until :func:`release_output_folders` or the process ends, so
    a killed run never leaves a stale lock; where ``flock`` does not exist, an
    ``O_EXCL`` lock file with the owner's PID, taken over when that process is
    gone). A folder another run holds is refused with a ValueError saying so.
    Holding the lock, the folder is checked again (not empty and no
    ``overwrite``: refused; ``overwrite`` None means what
    :func:`choose_output_folder` was told), unless ``resume``; then the
    command's ``owned_files`` left by an older run are removed. Temporary files
    of a run killed while saving go first (:func:`dlscratch.fileio.remove_temporaries`).
    """
    out = Path(out)
    key = _key(out)
    if key in _CLAIMS:
        raise ValueError(f"output folder {out} is already in use by this command")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out") from None
    try:
        fd = _lock(out)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    _CLAIMS[key] = (fd, created, out)
    try:
        # what a writer killed mid-save left behind (the lock keeps live writers out)
        remove_temporaries(out)
        if not resume:
            if overwrite is None:
                overwrite, hint = _CHOSEN.get(key, (False, ""))
            else:
                hint = _CHOSEN.get(key, (False, ""))[1]
            _check_free(out, overwrite, hint)
        for name in owned_files:
            (out / name).unlink(missing_ok=True)
    except BaseException:
        release_output_folders(out)
        raise
    return out


def prepare_output_folder(
    out: Path | None,
    default_name: str,
    *,
    overwrite: bool,
    owned_files=(),
    hint: str = "",
    resume: bool = False,
) -> Path:
    """:func:`choose_output_folder` and :func:`claim_output_folder` at once (claim first,
    work after): what a command that writes a run folder calls before loading anything."""
    if resume:
        return claim_output_folder(out, owned_files, resume=True)
    if out is None:  # a fresh name, taken with an exclusive mkdir
        while True:
            out = choose_output_folder(None, default_name, overwrite=False)
            try:
                out.mkdir(parents=True)
            except FileExistsError:
                continue
            break
        return claim_output_folder(out, owned_files, overwrite=False)
    choose_output_folder(out, default_name, overwrite=overwrite, hint=hint)
    return claim_output_folder(out, owned_files, overwrite=overwrite)


def release_output_folders(only: Path | None = None) -> None:
    """Give up this process's claims (or only that on ``only``): remove the lock file, and the
    folder itself when this process created it and it is still empty."""
    for key in list(_CLAIMS):
        if only is not None and key != _key(only):
            continue
        fd, created, out = _CLAIMS.pop(key)
        with contextlib.suppress(OSError):
            (out / LOCK_NAME).unlink()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when empty
        _CHOSEN.pop(key, None)


def _in_use(out: Path, holder: str) -> ValueError:
    who = f" (process {holder.strip()})" if holder.strip() else ""
    return ValueError(
        f"output folder {out} is in use by another dlscratch run{who}; wait for it to "
        "finish, or choose another --out"
    )


def _lock(out: Path):
    """Take ``out``'s lock; return the descriptor that holds it (None: the O_EXCL fallback)."""
    path = out / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return _lock_exclusive_file(out, path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace")
            os.close(fd)
            raise _in_use(out, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the file may have been removed by its previous holder meanwhile: lock anew
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _lock_exclusive_file(out: Path, path: Path):  # pragma: no cover - Windows
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = path.read_text(errors="replace").strip()
            if holder.isdigit() and not _alive(int(holder)):
                path.unlink(missing_ok=True)  # left by a run that is gone
                continue
            raise _in_use(out, holder) from None
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return None
    raise _in_use(out, "")


def _alive(pid: int) -> bool:  # pragma: no cover - Windows
    if pid == os.getpid():
        return False  # a leftover of this process: no claim of ours is open (checked above)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


atexit.register(release_output_folders)
