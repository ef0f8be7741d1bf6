"""``dlscratch verify`` reproduces every worked number and says so."""

import pytest

from dlscratch.cli import main
from dlscratch.verify import Check, format_table, run_checks


def test_all_reference_checks_pass():
    checks = run_checks()
    assert len(checks) >= 20
    failed = [c.name for c in checks if not c.passed]
    assert not failed, failed


def test_verify_command_prints_table_and_exits_zero(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "softmax([0.3, 2.9, 4.0])" in out
    assert "0.1999999999990898" in out
    assert "FAIL" not in out


def test_verify_exit_code_reflects_failures(monkeypatch, capsys):
    monkeypatch.setattr("dlscratch.verify.run_checks", lambda: [Check("broken", "1", "2", False)])
    assert main(["verify"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert "0 of 1 checks pass" in format_table([Check("broken", "1", "2", False)])


@pytest.mark.parametrize("width", [60, 80, 120, 300])
def test_the_table_fits_the_terminal(width):
    from dlscratch.verify import format_table, run_checks

    checks = run_checks()
    text = format_table(checks, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert text.splitlines()[-1] == f"{len(checks)} of {len(checks)} checks pass"
    for c in checks:  # nothing is lost: every value appears, wrapped or not
        assert c.expected.replace(" ", "") in text.replace(" ", "").replace("\n", "")
