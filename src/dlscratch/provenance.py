"""What produced a result: the versions recorded beside every run, search and experiment."""

from __future__ import annotations

import importlib
import platform


def versions(*packages: str) -> dict:
    """``{"dlscratch", "numpy", "python", "platform"}`` plus each of ``packages`` (by name).

    A package that is not installed is recorded as None.
    """
    import numpy as np

    import dlscratch

    found = {
        "dlscratch": dlscratch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in packages:
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            found[name] = None
    return found
