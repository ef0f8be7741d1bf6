"""Shared fixtures: a seeded generator; headless plotting; the data location (shared_data)."""

import matplotlib
import numpy as np
import pytest

import shared_data  # noqa: F401  (sets DLSCRATCH_DATA before any test imports the loader)

matplotlib.use("Agg")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
