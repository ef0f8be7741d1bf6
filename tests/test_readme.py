"""README's promises: its Python example runs, its commands exist."""

import re
from pathlib import Path

import pytest

from dlscratch.cli import SUBCOMMANDS
from shared_data import needs_mnist

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@needs_mnist
def test_the_library_example_runs_and_learns(tmp_path, monkeypatch):
    code = re.search(r"## The library in ten lines\n\n```python\n(.*?)```", README, re.S)[1]
    code = code.replace("epochs=5", "epochs=1")  # one epoch is enough to see it learn
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["history"].val_acc[-1] > 0.9
    assert scope["net"].accuracy(scope["x_test"], scope["t_test"]) > 0.9
    assert (tmp_path / "mnist.npz").is_file()


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_is_in_the_command_table(name):
    assert f"`dlscratch {name}" in README
