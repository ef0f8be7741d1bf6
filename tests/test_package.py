"""The package's face: every public name resolves, and importing the core stays light."""

import os
import subprocess
import sys

import pytest

import dlscratch


@pytest.mark.parametrize("name", dlscratch.__all__)
def test_every_public_name_resolves(name):
    assert getattr(dlscratch, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Trainerr'"):
        dlscratch.Trainerr  # noqa: B018


def test_import_dlscratch_loads_neither_plotting_nor_progress_bars():
    code = (
        "import sys, dlscratch; "
        "print(sorted(m for m in ('matplotlib', 'tqdm', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_names_are_the_real_objects():
    from dlscratch.data import load_mnist
    from dlscratch.training import Trainer

    assert dlscratch.Trainer is Trainer and dlscratch.load_mnist is load_mnist


def test_the_package_knows_nothing_of_a_checkout():
    """No path to ``../shared`` (not even in a comment), ``benchmarks/`` or the repository
    inside ``src/dlscratch``: an installed wheel has no checkout beside it."""
    import re
    from pathlib import Path

    package = Path(dlscratch.__file__).parent
    # paths in code (strings, Path arithmetic); a comment may still point a reader there
    pattern = re.compile(
        r"""\.\./shared|["']shared["']|["'][^"'#]*benchmarks/|parents\[[23]\]"""
    )
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_a_fresh_process_finds_data_only_through_its_settings(tmp_path):
    """From a folder with a ``../shared`` beside it but no DLSCRATCH_DATA, nothing is found
    there: the loader looks only at its arguments, the variable and the user cache."""
    (tmp_path / "shared" / "datasets" / "mnist").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "from dlscratch.data.mnist import locate_dataset\n"
        "locate_dataset('mnist', download=False)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c"),
           "DLSCRATCH_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work,
                         env=env)
    assert out.returncode != 0 and "not found" in out.stderr.lower()
    assert str(tmp_path / "shared") not in out.stderr  # never looked there


@pytest.mark.skipif(not os.environ.get("DLSCRATCH_CI"), reason=".ci/run installs the test "
                    "extra; elsewhere a missing optional library only skips its tests")
def test_ci_has_every_test_dependency():
    """Under .ci/run (which sets ``DLSCRATCH_CI``) every requirement of the ``test`` extra, and of
    the extras it names, is installed: a missing one would silently skip whole test files
    (as a renamed HTTP client once did to the web API's tests)."""
    import importlib.metadata
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    wanted, todo = set(), ["test"]
    while todo:
        for line in extras[todo.pop()]:
            req = Requirement(line)
            if req.name == "dlscratch":
                todo += sorted(req.extras)
            else:
                wanted.add(req.name)
    missing = []
    for name in sorted(wanted):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    assert not missing, f"not installed under CI: {missing}"
