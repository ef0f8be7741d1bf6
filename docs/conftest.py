"""The guide's examples run as doctests: offline, with a private cache, skipped without data."""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def guide_environment(monkeypatch, tmp_path):
    data = Path(os.environ.get("DLSCRATCH_DATA") or SHARED / "datasets")
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the guide needs MNIST in {data}/mnist (set DLSCRATCH_DATA)")
    monkeypatch.setenv("DLSCRATCH_DATA", str(data))
    try:
        from dlscratch.io import find_book_weights

        find_book_weights()
    except FileNotFoundError:
        pytest.skip("the guide needs the book's sample_weight.pkl (set DLSCRATCH_WEIGHTS)")
    monkeypatch.setenv("DLSCRATCH_OFFLINE", "1")  # a doctest never downloads
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
