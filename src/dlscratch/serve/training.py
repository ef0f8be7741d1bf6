"""One training run at a time, as a separate ``dlscratch train`` process, watched live.

The train page's options become ``dlscratch train`` arguments and are checked
by that command's own parser before anything starts (the same messages as on
the command line). The run goes into a new folder under the runs folder.

The command runs with ``--progress jsonl`` over plain pipes: besides its usual
lines it then writes JSON lines on standard output, ``{"event": "progress", ...}``
with the running loss and accuracy of the current epoch (at most every 0.2 s) and
``{"event": "epoch", ...}`` with each finished epoch's history row (see
:class:`dlscratch.training.progress.JsonProgress`). Those become ``progress`` and
``epoch`` events, every other line (standard output and error) a ``log`` event;
with ``status`` events for the run's state, the server streams them to the page.
Stopping sends SIGINT, exactly like Ctrl-C in a terminal: the command saves a
checkpoint and the run can be resumed with ``dlscratch train --resume``.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as _dt
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: How the command reports its progress to the server (JSON lines on standard output).
PROGRESS_ARGS = ("--progress", "jsonl")
#: Fields of a ``progress`` event (the current epoch's running means).
PROGRESS_FIELDS = ("epoch", "epochs", "step", "steps", "loss", "acc")
#: Keep at most this many events (log lines and progress ticks) of a run.
MAX_EVENTS = 20_000
#: Seconds a stopping run may take to save its checkpoint before it is killed at shutdown.
STOP_TIMEOUT_S = 15.0


class TrainingBusyError(RuntimeError):
    """A training run is already in progress (one at a time per server)."""


def train_argv(options: dict) -> list[str]:
    """``dlscratch train`` arguments for the form's ``options`` (None values left out).

    Each option is a run-configuration field and goes to its flag (``batch_size`` ->
    ``--batch-size``, as :func:`dlscratch.cli.runconfig.flag` names them); the train
    parser then checks them all (:func:`check_train_argv`).
    """
    from dlscratch.cli.runconfig import flag as flag_of

    argv = []
    for key, value in options.items():
        if value is None:
            continue
        flag = flag_of(key)
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value) or "none"
        argv += [flag, str(value)]
    return argv


def check_train_argv(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with the ``dlscratch train`` parser; ValueError with its message if bad."""
    from dlscratch.cli import train as train_command

    root = argparse.ArgumentParser(prog="dlscratch")
    parser = train_command.register(root.add_subparsers())

    def refuse(message):
        raise ValueError(message)

    parser.error = refuse  # the command line would print usage and exit 2
    try:
        return parser.parse_args(argv)
    except SystemExit:  # --help and the like: nothing a form sends
        raise ValueError(f"not a training option: {' '.join(argv)}") from None


def parse_line(line: str) -> tuple[str, dict] | None:
    """The event of one line the command printed: ``(kind, data)``, None for an empty line.

    A JSON line ``{"event": "progress" | "epoch", ...}`` of ``--progress jsonl``
    becomes a ``progress`` event (:data:`PROGRESS_FIELDS`) or an ``epoch`` event
    (the epoch's history row and ``epochs``); any other line is a ``log`` event.
    """
    text = line.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        kind = obj.get("event") if isinstance(obj, dict) else None
        if kind == "progress":
            return "progress", {key: _number(obj.get(key)) for key in PROGRESS_FIELDS}
        if kind == "epoch":
            return "epoch", {k: _number(v) for k, v in obj.items() if k != "event"}
    return "log", {"line": text}


def _number(value):
    """JSON numbers as they are; anything else (a non-finite float cannot occur) as None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


class TrainingJob:
    """A ``dlscratch train`` child process and the events it produced.

    Thread-safe: the reader thread appends events; request handlers read them
    with :meth:`events_since`.
    """

    def __init__(self, runs_dir: Path, *, python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir)
        self.python = python
        self._lock = threading.Lock()
        self._events: list[tuple[int, str, dict]] = []  # (number, kind, data)
        self._next_event = 0
        self.run_start = 0  # number of the current run's first event
        self.process: subprocess.Popen | None = None
        self.run_name: str | None = None
        self.state = "idle"  # idle, running, stopping, finished, stopped, failed
        self.exit_code: int | None = None
        self.message = ""
        self.options: dict = {}
        self._reader: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def snapshot(self) -> dict:
        """The run's state, name, options, exit code, and where its events start."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict:
        return {
            "state": self.state,
            "run": self.run_name,
            "exit_code": self.exit_code,
            "message": self.message,
            "options": dict(self.options),
            "since": self.run_start,
        }

    def events_since(self, number: int) -> tuple[list[tuple[int, str, dict]], int]:
        """Events numbered ``number`` and later, and the number the next one will get."""
        with self._lock:
            i = bisect.bisect_left(self._events, number, key=lambda e: e[0])
            return self._events[i:], self._next_event

    def _emit(self, kind: str, data: dict) -> None:
        with self._lock:
            self._emit_locked(kind, data)

    def _emit_locked(self, kind: str, data: dict) -> None:
        self._events.append((self._next_event, kind, data))
        self._next_event += 1
        if len(self._events) > MAX_EVENTS:  # drop old log lines and ticks, keep the rest
            half = len(self._events) // 2
            old = [e for e in self._events[:half] if e[1] in ("status", "epoch")]
            self._events = old + self._events[half:]

    def _set_state(self, state: str, message: str = "", exit_code: int | None = None) -> None:
        with self._lock:
            self.state, self.message, self.exit_code = state, message, exit_code
            self._emit_locked("status", self._snapshot())

    # -- start and stop ---------------------------------------------------------------------
    def start(self, options: dict) -> str:
        """Check ``options`` like the command line does and start the run; return its name.

        Raises TrainingBusyError while a run is in progress and ValueError for
        options ``dlscratch train`` refuses.
        """
        argv = train_argv(options)
        check_train_argv(argv)
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                raise TrainingBusyError(
                    f"a training run ({self.run_name}) is in progress; stop it first "
                    "(one training at a time per server)"
                )
            name = self._new_run_name(options)
            out = self.runs_dir / name
            self.run_name, self.options = name, dict(options)
            self.run_start, self.exit_code = self._next_event, None
            self.state, self.message = "running", ""
            self.process = self._spawn([*argv, *PROGRESS_ARGS, "--out", str(out)])
            self._emit_locked("status", self._snapshot())
        self._reader = threading.Thread(
            target=self._read, args=(self.process,), name="dlscratch-train-reader", daemon=True
        )
        self._reader.start()
        return name

    def _new_run_name(self, options: dict) -> str:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        hidden = options.get("hidden")
        sizes = (
            "x".join(str(s) for s in hidden)
            if isinstance(hidden, (list, tuple))
            else str(hidden or "100,100").replace(",", "x")
        )
        parts = [
            stamp,
            "web",
            sizes,
            options.get("activation") or "",
            options.get("optimizer") or "",
        ]
        base = re.sub(r"[^A-Za-z0-9._-]+", "", "-".join(p for p in parts if p))
        name, n = base, 2
        while (self.runs_dir / name).exists():
            name, n = f"{base}-{n}", n + 1
        return name

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        """Start the command with its standard output and error on one pipe."""
        cmd = [self.python, "-m", "dlscratch.serve.train_process", *argv]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one pipe: the lines stay in the order they were written
            env=env,
            start_new_session=True,  # Ctrl-C of the server reaches it through stop()
        )

    def stop(self) -> bool:
        """Interrupt the run as Ctrl-C does (checkpoint saved); False when none is running."""
        with self._lock:
            proc = self.process
            if proc is None or proc.poll() is not None:
                return False
            self.state = "stopping"
            self._emit_locked("status", self._snapshot())
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:  # pragma: no cover - it ended just now
            return False
        return True

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop a running child (SIGINT, then SIGKILL after ``timeout``) and wait for it."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            self.stop()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    # -- the reader thread ------------------------------------------------------------------
    def _read(self, process: subprocess.Popen) -> None:
        log: list[str] = []
        with process.stdout:
            for raw in process.stdout:  # whole lines: the JSON lines are written one per call
                event = parse_line(raw.decode("utf-8", errors="replace"))
                if event is None:
                    continue
                kind, data = event
                if kind == "log":
                    log.append(data["line"])
                self._emit(kind, data)
        code = process.wait()
        if code == 0:
            self._set_state("finished", "training finished", code)
        elif code == 130:
            self._set_state("stopped", _last_matching(log, "interrupted") or "stopped", code)
        else:
            errors = [line for line in log if "error" in line.lower()]
            why = errors[-1] if errors else (log[-1] if log else f"exit status {code}")
            self._set_state("failed", why, code)


def _last_matching(lines: list[str], word: str) -> str:
    found = [line for line in lines if word in line]
    return found[-1] if found else ""
