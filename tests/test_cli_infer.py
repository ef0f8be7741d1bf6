"""``dlscratch infer``: the book's 0.9352, batched and one image at a time."""

import os
import pickle
import re

import numpy as np
import pytest

from dlscratch.cli import main
from dlscratch.cli.infer import count_correct, format_table
from shared_data import BOOK_WEIGHTS

pytestmark = pytest.mark.skipif(
    not BOOK_WEIGHTS.is_file(), reason=f"book weights not at {BOOK_WEIGHTS}"
)


def _rows(out: str) -> dict:
    """``mode -> (batch, correct, accuracy)`` from the printed table."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(single|batched)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d,]+$", line)
        if m:
            rows[m[1]] = (int(m[2]), int(m[3]), int(m[4]), m[5])
    return rows


@pytest.mark.slow
def test_infer_batched(capsys):
    assert main(["infer", "--weights", str(BOOK_WEIGHTS)]) == 0
    out = capsys.readouterr().out
    assert _rows(out) == {"batched": (100, 9352, 10000, "0.9352")}
    assert "784-50-100-10 (sigmoid, float32)" in out


@pytest.mark.slow
def test_infer_single_image_loop(capsys):
    argv = ["infer", "--weights", str(BOOK_WEIGHTS), "--batch-size", "1", "--repeat", "1"]
    assert main(argv) == 0
    assert _rows(capsys.readouterr().out) == {"single": (1, 9352, 10000, "0.9352")}


@pytest.mark.slow
def test_infer_compare_and_converted_model(capsys, tmp_path):
    from dlscratch.io import convert_book_weights

    model = convert_book_weights(BOOK_WEIGHTS, tmp_path / "book.npz")
    argv = ["infer", "--weights", str(model), "--compare", "--batch-size", "250", "--repeat", "1"]
    assert main(argv) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows == {
        "single": (1, 9352, 10000, "0.9352"),
        "batched": (250, 9352, 10000, "0.9352"),
    }
    # a run directory holding model.npz works too
    os.replace(model, tmp_path / "model.npz")
    assert main(["infer", "--weights", str(tmp_path), "--batch-size", "1000"]) == 0
    assert _rows(capsys.readouterr().out) == {"batched": (1000, 9352, 10000, "0.9352")}


def test_infer_missing_weights(capsys, tmp_path):
    assert main(["infer", "--weights", str(tmp_path / "none.pkl")]) == 2  # a bad path given
    err = capsys.readouterr().err
    assert "dlscratch infer: error:" in err and "none.pkl" in err


def test_infer_refuses_malicious_pickle(capsys, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"W1": Evil()}))
    assert main(["infer", "--weights", str(evil)]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["0", "-3", "ten"])
def test_infer_bad_batch_size(capsys, bad):
    with pytest.raises(SystemExit) as info:
        main(["infer", "--weights", str(BOOK_WEIGHTS), "--batch-size", bad])
    assert info.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_count_correct_small_batches_agree():
    from dlscratch.io import load_book_weights

    net = load_book_weights(BOOK_WEIGHTS)
    rng = np.random.default_rng(0)
    x = rng.random((37, 784), dtype=np.float32)
    t = net.predict(x).argmax(axis=1)
    t[:5] = (t[:5] + 1) % 10  # five wrong labels
    for b in (1, 7, 100):
        r = count_correct(net, x, t, b, repeat=2)
        assert (r.correct, r.total, r.batch_size) == (32, 37, b)
    table = format_table([count_correct(net, x, t, 1), count_correct(net, x, t, 10)])
    assert table.splitlines()[0].split() == [
        "mode",
        "batch",
        "correct",
        "accuracy",
        "time",
        "(s)",
        "images/s",
    ]
    assert "32/37" in table and "0.8649" in table
