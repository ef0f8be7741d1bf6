"""Shared fixtures and markers: a seeded generator, where the data and the book's weights are."""

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

DATA_ROOT = Path(os.environ.get("DLSCRATCH_DATA") or SHARED / "datasets")
MNIST_DIR = DATA_ROOT / "mnist"
HAVE_MNIST = (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()
HAVE_WEIGHTS = BOOK_WEIGHTS.is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not in {MNIST_DIR}")
needs_weights = pytest.mark.skipif(
    not (HAVE_MNIST and HAVE_WEIGHTS),
    reason=f"MNIST or the book's weights ({BOOK_WEIGHTS}) missing",
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
