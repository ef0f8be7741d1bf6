"""Hostile pickles, model files and IDX files: each refused with a clear error, in bounded memory.

Every file is loaded in a child Python (:func:`hostile.load_in_child`): a
segfault or a memory bomb there cannot take the test run down, and the peak
memory of each load is measured on its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adversarial.hostile import load_in_child, make_good_idx, make_idx, make_models, make_pickles

BOOK = Path("/work/shared/weights/sample_weight.pkl")


def _check_all_refused(report, names: dict, limit_mb: float) -> None:
    assert report["returncode"] == 0, report["stderr"][-2000:]  # no crash of the interpreter
    results = report["results"]
    assert len(results) == len(names)
    for name, path in names.items():
        outcome, message, peak = results[str(path)]
        assert outcome == "refused", (name, outcome, message)
        assert "Traceback" not in message and str(path) in message, (name, message)
        assert peak < limit_mb, (name, peak)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_hostile_pickles_are_refused_before_anything_is_built(tmp_path):
    files = make_pickles(tmp_path)
    paths = list(files.values()) + ([BOOK] if BOOK.is_file() else [])
    report = load_in_child("pickle", paths)
    if BOOK.is_file():  # the real file still loads
        assert report["results"].pop(str(BOOK))[0] == "accepted"
    # the book's file is 0.2 MB; nothing hostile may cost more than a few MB
    _check_all_refused(report, files, limit_mb=20)
    messages = " ".join(r[1] for r in report["results"].values())
    assert "nested more than 16 deep" in messages and "dtype 'O'" in messages
    assert "os.system" in messages and "BINPERSID" in messages


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_hostile_model_files_are_refused_in_bounded_memory(tmp_path):
    good, files = make_models(tmp_path)
    report = load_in_child("model", [good, *files.values()])
    outcome, message, legit_mb = report["results"].pop(str(good))
    assert outcome == "accepted", message
    # a MNIST-sized model is 0.36 MB: refusing any variant stays far below 2x + a margin
    _check_all_refused(report, files, limit_mb=2 * max(legit_mb, 1) + 20)
    results = {name: report["results"][str(p)][1] for name, p in files.items()}
    assert "415,920,010 parameters" in results["hidden_20000x20000"]
    assert "NaN or infinity once stored as float32" in results["weights_1e300_float64"]
    assert "complex" in results["weights_complex"]
    assert "3,221,225" in results["declares_3gib_W1"]
    assert "nested more than 64 levels" in results["metadata_deep_json"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_hostile_idx_files_are_refused_and_decompression_is_bounded(tmp_path):
    files = make_idx(tmp_path)
    good = make_good_idx(tmp_path)
    report = load_in_child("idx", [good, *files.values()])
    outcome, message, legit_mb = report["results"].pop(str(good))
    assert outcome == "accepted", message
    # the gzip bomb inflates to 256 MiB; reading stops one byte after the 47 MB declared
    _check_all_refused(report, files, limit_mb=2 * legit_mb + 20)
    assert "trailing bytes" in report["results"][str(files["bomb_trailing"])][1]
    assert "not a regular file" in report["results"][str(files["fifo"])][1]
