"""Every computing command takes ``--threads`` and ``$DLSCRATCH_THREADS``; the default is 1."""

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from dlscratch.cli import COMPUTING, build_parser, main


def blas_threads() -> int:
    return min(entry["num_threads"] for entry in threadpool_info() if entry["user_api"] == "blas")


@pytest.fixture
def restore_threads():
    with threadpool_limits(limits=None):  # put back what the process had
        yield


@pytest.mark.parametrize("command", COMPUTING)
def test_every_computing_command_has_a_threads_option(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert any("--threads" in action.option_strings for action in sub._actions)


def test_threads_option_env_and_default(restore_threads, monkeypatch, tmp_path, capsys):
    missing = str(tmp_path / "nope.npz")
    monkeypatch.delenv("DLSCRATCH_THREADS", raising=False)
    with threadpool_limits(limits=2):
        two = blas_threads()  # 2, or fewer where the BLAS or the machine has fewer
        with threadpool_limits(limits=1):
            monkeypatch.setenv("DLSCRATCH_THREADS", "2")
            main(["evaluate", "--model", missing])  # fails on the model, after the threads
            assert blas_threads() == two  # the variable
        monkeypatch.delenv("DLSCRATCH_THREADS")
        main(["evaluate", "--model", missing])
        assert blas_threads() == 1  # the default
        main(["evaluate", "--threads", "2", "--model", missing])
        assert blas_threads() == two  # the option
    capsys.readouterr()


@pytest.mark.parametrize("value", ["0", "abc", "-3"])
def test_a_bad_thread_count_in_the_environment_exits_2(monkeypatch, capsys, tmp_path, value):
    monkeypatch.setenv("DLSCRATCH_THREADS", value)
    code = main(["evaluate", "--model", str(tmp_path / "nope.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "DLSCRATCH_THREADS must be a whole number >= 1" in err
