"""Where the tests find MNIST and the book's weights, and markers that skip without them.

Importing this module points ``DLSCRATCH_DATA`` at ``../shared/datasets`` beside the
checkout, unless the caller chose a folder.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BOOK_WEIGHTS = SHARED / "weights" / "sample_weight.pkl"

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
