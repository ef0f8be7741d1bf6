"""The package's face: every public name resolves, and importing the core stays light."""

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
