"""Checkpoints: tampered or missing pieces refused clearly, the old format read, and a kill
while saving never leaves a run that cannot resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

from dlscratch.io import METADATA_KEY, load_checkpoint, load_model
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import Adam
from dlscratch.training import Checkpoint, EarlyStopping, Trainer
from dlscratch.training.checkpoint import load_trainer_checkpoint


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((120, 6)).astype(np.float32)
    t = (x[:, 0] > 0.5).astype(np.int64)
    return x[:90], t[:90], x[90:], t[90:]


def _trained(tmp_path, epochs=2):
    data = _data()
    trainer = Trainer(
        MultiLayerNet(6, [5], 2, rng=0),
        Adam(0.01),
        *data,
        epochs=epochs,
        batch_size=30,
        rng=0,
        callbacks=[EarlyStopping("val_loss", patience=5), Checkpoint(tmp_path)],
    )
    trainer.fit()
    return tmp_path / "checkpoint.npz", data


def _rewrite(path, edit_meta=None, drop=(), replace=None):
    """Rewrite a checkpoint with its metadata edited, entries dropped or replaced."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    meta = json.loads(arrays[METADATA_KEY].tobytes())
    if edit_meta is not None:
        edit_meta(meta)
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    arrays.update(replace or {})
    np.savez(path, **arrays)


def _trainer_state(meta):
    return meta["user"]["trainer"]


TAMPERED = {
    "epoch -3": (lambda m: _trainer_state(m).update(epoch=-3), "'epoch' is -3"),
    "step 10**9": (lambda m: _trainer_state(m).update(step=10**9), "says 1000000000 steps"),
    "step 1e999": (lambda m: _trainer_state(m).update(step=float("inf")), "'step' is inf"),
    "optimizer t 1e999": (
        lambda m: m["optimizer"].update(t=float("inf")),
        "optimizer step count inf",
    ),
    "optimizer t -1": (lambda m: m["optimizer"].update(t=-1), "optimizer step count -1"),
    "step_in_epoch 10**6": (
        lambda m: _trainer_state(m).update(step_in_epoch=10**6),
        "'step_in_epoch'",
    ),
    "epoch as string": (lambda m: _trainer_state(m).update(epoch="2"), "'epoch' is '2'"),
    "history a list": (lambda m: _trainer_state(m).update(history=[1]), "'history' dict"),
    "rng unknown": (
        lambda m: _trainer_state(m)["rng_state"].update(bit_generator="os.system"),
        "'rng_state'",
    ),
    "rng state garbage": (
        lambda m: _trainer_state(m)["rng_state"].update(state={"state": "x", "inc": []}),
        "random generator state",
    ),
    "callbacks a list": (lambda m: _trainer_state(m).update(callbacks=[1]), "'callbacks'"),
    "early stopping state missing": (
        lambda m: _trainer_state(m)["callbacks"]["EarlyStopping"].pop("wait"),
        "callback EarlyStopping",
    ),
    "config missing": (lambda m: _trainer_state(m).pop("config"), "'config'"),
    "sampling unknown": (
        lambda m: _trainer_state(m)["config"].update(sampling="x"),
        "'sampling'",
    ),
    "version 99": (lambda m: _trainer_state(m).update(version=99), "version 99"),
    "trainer state missing": (lambda m: m["user"].pop("trainer"), "without training state"),
    "trainer state a list": (lambda m: m["user"].update(trainer=[]), "without training state"),
    "stop_training a string": (
        lambda m: _trainer_state(m).update(stop_training="no"),
        "'stop_training'",
    ),
    "losses as strings": (
        lambda m: _trainer_state(m)["history"].update(losses=["a"] * 6),
        "'history.losses'",
    ),
    "array reference to nothing": (
        lambda m: _trainer_state(m)["history"].update(losses={"__array__": "state/99"}),
        "missing entry",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_checkpoints_are_refused_with_a_clear_error(tmp_path, case):
    path, data = _trained(tmp_path)
    edit, expected = TAMPERED[case]
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="checkpoint.npz") as info:
        Trainer.resume(path, *data, callbacks=[EarlyStopping("val_loss", patience=5)])
    assert expected in str(info.value)
    assert isinstance(load_model(path), MultiLayerNet)  # the network itself still loads


def test_damaged_callback_weights_and_missing_entries_are_refused(tmp_path):
    path, data = _trained(tmp_path)
    with np.load(path) as npz:
        state_keys = [k for k in npz.files if k.startswith("state/")]
    assert state_keys  # losses and early stopping's best weights live in the same file
    for key in state_keys:
        _trained(tmp_path)
        _rewrite(path, drop=(key,))
        with pytest.raises(ValueError, match="missing entry"):
            load_trainer_checkpoint(path)
    _trained(tmp_path)
    with np.load(path) as npz:
        meta = json.loads(npz[METADATA_KEY].tobytes())
    best = meta["user"]["trainer"]["callbacks"]["EarlyStopping"]["best_state"]["W1"]["__array__"]
    _rewrite(path, replace={best: np.full((6, 5), np.nan, np.float32)})
    with pytest.raises(ValueError, match="NaN or infinity"):
        load_trainer_checkpoint(path)
    _rewrite(path, replace={best: np.zeros((7, 5), np.float32)})
    with pytest.raises(ValueError, match="weight 'W1' does not fit the network"):
        load_trainer_checkpoint(path)


def test_a_damaged_optimizer_entry_does_not_block_the_model(tmp_path):
    path, data = _trained(tmp_path)
    _rewrite(path, replace={"optim/m/W1": np.full((6, 5), np.inf, np.float32)})
    net = load_model(path)
    assert net.params["W1"].shape == (6, 5)
    with pytest.raises(ValueError, match="'optim/m/W1' contains NaN or infinity"):
        load_checkpoint(path)


def test_a_checkpoint_of_the_first_format_still_resumes_exactly(tmp_path):
    """Version 1 kept the callbacks' arrays in <stem>-callbacks.npz, tied by a token."""
    path, data = _trained(tmp_path, epochs=2)
    callbacks = [EarlyStopping("val_loss", patience=5)]
    expected = Trainer.resume(path, *data, epochs=4, callbacks=callbacks).fit()
    # turn the checkpoint into the old layout
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop(METADATA_KEY).tobytes())
    state = meta["user"]["trainer"]
    extra = {k[len("state/") :]: arrays.pop(k) for k in list(arrays) if k.startswith("state/")}

    def old_refs(obj):
        if isinstance(obj, dict):
            if set(obj) == {"__array__"}:
                return {"__array__": obj["__array__"][len("state/") :]}
            return {k: old_refs(v) for k, v in obj.items()}
        return obj

    state = old_refs(state)
    state["history"]["losses"] = extra.pop(state["history"]["losses"]["__array__"]).tolist()
    token = uuid.uuid4().hex
    state.update(version=1, token=token, arrays_file="checkpoint-callbacks.npz")
    meta["user"]["trainer"] = state
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    sidecar = tmp_path / "checkpoint-callbacks.npz"
    np.savez(sidecar, __token__=np.frombuffer(token.encode(), np.uint8), **extra)

    resumed = Trainer.resume(path, *data, epochs=4, callbacks=[EarlyStopping("val_loss", 5)])
    assert resumed.fit().losses == expected.losses

    np.savez(sidecar, __token__=np.frombuffer(b"other", np.uint8), **extra)
    with pytest.raises(ValueError, match="does not belong to"):
        load_trainer_checkpoint(path)
    sidecar.unlink()
    with pytest.raises(FileNotFoundError, match="Re-train"):
        load_trainer_checkpoint(path)


_SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dlscratch.nets import MultiLayerNet
    from dlscratch.optim import Adam
    from dlscratch.training import Trainer
    rng = np.random.default_rng(0)
    x = rng.random((200, 784)).astype(np.float32)
    t = rng.integers(0, 10, 200)
    trainer = Trainer(MultiLayerNet(784, [256, 256], 10, rng=0), Adam(), x, t, epochs=1,
                      batch_size=100, rng=0)
    trainer.fit()
    i = 0
    while True:
        i += 1
        trainer.save_checkpoint(sys.argv[1], metadata={"save": i})
        if i == 1:
            print("saved", flush=True)
    """
)


def test_a_kill_while_saving_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    for delay in (0.05, 0.2, 0.45):
        child = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline().strip() == "saved"
            time.sleep(delay)  # somewhere inside one of the following saves
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        ck, state = load_trainer_checkpoint(path)
        assert ck.user["run"]["save"] >= 1 and state["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")) == [
        "checkpoint.npz"
    ]


def test_a_resumed_run_clears_what_a_killed_save_left(tmp_path, capsys):
    """A run killed mid-save leaves a temporary file beside its intact checkpoint; the next
    claim of the folder (resume, or a new run with --overwrite) removes it, and a folder
    holding nothing else counts as empty again."""
    from dlscratch.cli import main

    run = tmp_path / "run"
    args = ["train", "--limit", "300", "--epochs", "1", "--val-split", "0", "--hidden", "8",
            "--progress", "none", "--out", str(run)]
    assert main(args) == 0
    stale = run / ".tmp-k1ll3d.npz"
    stale.write_bytes(b"half a checkpoint")
    (run / ".tmp-elsewhere").mkdir()  # not a file this library writes: left alone
    assert main(["train", "--resume", str(run), "--epochs", "2", "--progress", "none"]) == 0
    assert not stale.exists() and (run / ".tmp-elsewhere").is_dir()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".tmp-abcdefgh.json").write_text("{")
    assert main([*args[:-1], str(fresh)]) == 0  # not refused as "not empty"
    assert not (fresh / ".tmp-abcdefgh.json").exists()
    capsys.readouterr()
