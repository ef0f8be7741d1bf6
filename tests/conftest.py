"""Shared fixtures: a seeded generator and the dataset location."""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BOOK_WEIGHTS = SHARED / "weights" / "sample_weight.pkl"

# Point the loader at the datasets beside the checkout unless the caller chose a folder.
if "DLSCRATCH_DATA" not in os.environ and (SHARED / "datasets").is_dir():
    os.environ["DLSCRATCH_DATA"] = str(SHARED / "datasets")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
