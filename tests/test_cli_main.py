"""The dispatcher: every subcommand's errors end as a message and an exit status."""

import pytest

from dlscratch import cli
from dlscratch.cli import verify as verify_cli


def _run_with(monkeypatch, capsys, exc):
    """Run ``dlscratch verify`` with its command replaced by one that raises ``exc``."""

    def fail(args):
        raise exc

    monkeypatch.setattr(verify_cli, "run", fail)
    code = cli.main(["verify"])
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (ValueError("--lr must be > 0"), 2, "dlscratch verify: error: --lr must be > 0"),
        (TypeError("dtype must be float32 or float64"), 2, "error: dtype must be float32"),
        (FileNotFoundError("no such file: x.npz"), 2, "error: no such file: x.npz"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_errors_become_one_line_and_a_status(monkeypatch, capsys, exc, code, message):
    got, out = _run_with(monkeypatch, capsys, exc)
    assert got == code
    assert message in out.err and "Traceback" not in out.err


def test_a_closed_pipe_ends_quietly_with_sigpipes_status(monkeypatch, capsys):
    got, out = _run_with(monkeypatch, capsys, BrokenPipeError(32, "Broken pipe"))
    assert got == 141 and out.err == ""


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setenv("DLSCRATCH_DEBUG", "1")
    with pytest.raises(ValueError, match="bad"):
        _run_with(monkeypatch, capsys, ValueError("bad"))


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
