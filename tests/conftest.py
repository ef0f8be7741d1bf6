"""Shared fixtures: a seeded generator; headless plotting; the data location (shared_data)."""

import signal

import matplotlib
import numpy as np
import pytest

import shared_data  # noqa: F401  (sets DLSCRATCH_DATA before any test imports the loader)

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def threads_as_they_were():
    """A test that changes the thread count (a command run with ``--threads 2``) puts it back."""
    from dlscratch.backend import num_threads, set_num_threads

    before = num_threads()
    yield
    if num_threads() != before:
        set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def sigint_default():
    """SIGINT raises KeyboardInterrupt during the test, as in an interactive run.

    A test process started in the background inherits SIGINT as *ignored*; tests
    that send themselves a Ctrl-C need Python's usual handler. Restored afterwards.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
