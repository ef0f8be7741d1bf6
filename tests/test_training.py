"""Trainer: learning, determinism, exact resume, early stopping, the non-finite guard, Ctrl-C."""

import json
import math
import os
import re
import signal

import numpy as np
import pytest

from dlscratch import SGD, Adam, Momentum, MultiLayerNet
from dlscratch.io import load_model, read_metadata
from dlscratch.training import (
    EPOCH_COLUMNS,
    Callback,
    Checkpoint,
    CosineLR,
    DivergedError,
    EarlyStopping,
    History,
    LambdaCallback,
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
)


def blobs(n=600, d=20, k=3, seed=0, spread=1.5):
    """k Gaussian clusters in d dimensions (learnable, not perfectly separable)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * spread
    t = rng.integers(0, k, n)
    x = (centres[t] + rng.standard_normal((n, d))).astype(np.float32)
    return x, t


def split(x, t, n_val=100):
    return (x[n_val:], t[n_val:]), (x[:n_val], t[:n_val])


def params_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_loss_decreases_and_history_is_complete():
    x, t = blobs()
    (x_tr, t_tr), (x_val, t_val) = split(x, t)
    net = MultiLayerNet(20, [32], 3, rng=1)
    trainer = Trainer(net, SGD(0.1), x_tr, t_tr, x_val, t_val, epochs=5, batch_size=50, rng=0)
    history = trainer.fit()

    assert history is trainer.history
    assert len(history) == 5 and trainer.epoch == 5
    assert len(history.losses) == 5 * 10 == trainer.step  # 500 samples / 50 per batch
    assert [row["step"] for row in history.epochs] == [10, 20, 30, 40, 50]
    assert all(set(row) == set(EPOCH_COLUMNS) for row in history.epochs)
    # the loss per epoch falls, and the mean batch loss is that of the recorded steps
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_loss[-1] < history.val_loss[0]
    assert history.epochs[2]["batch_loss"] == pytest.approx(np.mean(history.losses[20:30]))
    assert np.mean(history.losses[-10:]) < np.mean(history.losses[:10])
    assert history.train_acc[-1] > 0.9 and history.val_acc[-1] > 0.85
    assert history.lr == [0.1] * 5
    assert all(s > 0 for s in history.epoch_times)
    # the reported accuracy is the network's
    assert history.val_acc[-1] == pytest.approx(net.accuracy(x_val, t_val))


def test_learns_a_linearly_separable_problem_to_100_percent():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (400, 2))
    margin = x @ np.array([1.0, -2.0]) + 0.3
    keep = np.abs(margin) > 0.15  # a clear gap between the classes
    x, t = x[keep].astype(np.float32), (margin[keep] > 0).astype(np.int64)
    net = MultiLayerNet(2, [8], 2, rng=0)
    history = Trainer(net, Adam(0.05), x, t, epochs=40, batch_size=20, rng=0).fit()
    assert history.train_acc[-1] == 1.0
    assert net.accuracy(x, t) == 1.0


def test_uint8_inputs_are_scaled_per_batch_like_float_inputs():
    rng = np.random.default_rng(0)
    x8 = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    t = (x8[:, :8].sum(axis=1) > x8[:, 8:].sum(axis=1)).astype(np.int64)
    xf = x8.astype(np.float32) / np.float32(255)
    a, b = MultiLayerNet(16, [8], 2, rng=4), MultiLayerNet(16, [8], 2, rng=4)
    Trainer(a, Adam(0.01), x8, t, epochs=2, batch_size=25, rng=1).fit()
    Trainer(b, Adam(0.01), xf, t, epochs=2, batch_size=25, rng=1).fit()
    assert params_equal(a, b)


def test_same_seed_gives_bit_identical_parameters_and_history():
    x, t = blobs()
    (x_tr, t_tr), (x_val, t_val) = split(x, t)

    def run(seed):
        net = MultiLayerNet(20, [16, 16], 3, use_dropout=True, dropout_ratio=0.2, rng=seed)
        tr = Trainer(net, Adam(0.01), x_tr, t_tr, x_val, t_val, epochs=3, batch_size=32, rng=seed)
        return net, tr.fit()

    (a, ha), (b, hb), (c, _) = run(7), run(7), run(8)
    assert params_equal(a, b)
    assert ha.losses == hb.losses and ha.val_acc == hb.val_acc
    assert not params_equal(a, c)


@pytest.mark.parametrize("sampling", ["epoch", "random"])
def test_random_sampling_draws_with_replacement(sampling):
    x, t = blobs(n=230)
    seen = []
    tr = Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        SGD(0.1),
        x,
        t,
        epochs=1,
        batch_size=50,
        rng=0,
        sampling=sampling,
        callbacks=[_Recorder(seen)],
    )
    tr.fit()
    if sampling == "epoch":  # every sample once; the last batch holds the remainder
        assert tr.steps_per_epoch == 5 and tr.step == 5
        assert sorted(np.concatenate(seen)) == list(range(230))
        assert [len(s) for s in seen] == [50, 50, 50, 50, 30]
    else:  # N // batch_size full batches drawn independently
        assert tr.steps_per_epoch == 4 and tr.step == 4
        assert [len(s) for s in seen] == [50] * 4
        assert len(np.unique(np.concatenate(seen))) < 200


class _Recorder(Callback):
    """Remembers which samples each step used (through the trainer's epoch batches)."""

    def __init__(self, out):
        self.out = out

    def on_epoch_begin(self, trainer, epoch):
        state = trainer.rng.bit_generator.state
        trainer.rng.bit_generator.state = trainer._epoch_rng_state
        self.batches = list(trainer._epoch_batches())
        trainer.rng.bit_generator.state = state

    def on_step_end(self, trainer, step, loss):
        self.out.append(np.asarray(self.batches[trainer.step_in_epoch - 1]))


# -- resume -------------------------------------------------------------------------------------


def _resume_setup(tmp_path):
    x, t = blobs(n=500)
    (x_tr, t_tr), (x_val, t_val) = split(x, t)

    def net():
        return MultiLayerNet(
            20, [16, 16], 3, use_batchnorm=True, use_dropout=True, dropout_ratio=0.3, rng=11
        )

    return net, (x_tr, t_tr, x_val, t_val)


def test_resume_after_one_epoch_equals_an_uninterrupted_run(tmp_path):
    make, data = _resume_setup(tmp_path)
    straight = make()
    hist = Trainer(straight, Adam(0.01), *data, epochs=3, batch_size=32, rng=5).fit()

    first = Trainer(
        make(),
        Adam(0.01),
        *data,
        epochs=1,
        batch_size=32,
        rng=5,
        callbacks=[Checkpoint(tmp_path)],
    )
    first.fit()
    ck = tmp_path / "checkpoint.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]  # one file
    resumed = Trainer.resume(ck, *data, epochs=3)
    assert (resumed.epoch, resumed.step) == (1, 13)
    hist2 = resumed.fit()

    assert params_equal(straight, resumed.network)  # incl. batch-norm running statistics
    assert hist2.losses == hist.losses
    assert hist2.val_acc == hist.val_acc
    assert resumed.optimizer.t == 3 * 13


def test_ctrl_c_mid_epoch_saves_a_checkpoint_and_resume_is_exact(tmp_path, sigint_default):
    make, data = _resume_setup(tmp_path)
    straight = make()
    Trainer(straight, Momentum(0.05), *data, epochs=3, batch_size=32, rng=2).fit()

    def interrupt(logs):
        if logs["step"] == 20:  # in epoch 2 (13 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer(
        make(),
        Momentum(0.05),
        *data,
        epochs=3,
        batch_size=32,
        rng=2,
        callbacks=[LambdaCallback(on_step_end=interrupt), Checkpoint(tmp_path / "ck.npz")],
    )
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)
    assert (exc.step, exc.epoch) == (20, 1)
    assert exc.checkpoint == tmp_path / "ck.npz" and exc.checkpoint.is_file()
    assert "step 20" in str(exc)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    resumed = Trainer.resume(tmp_path / "ck.npz", *data)
    assert (resumed.epoch, resumed.step, resumed.step_in_epoch) == (1, 20, 7)
    resumed.fit()
    assert params_equal(straight, resumed.network)


def test_an_ignored_sigint_stays_ignored(tmp_path):
    """A run started in the background (SIGINT ignored) is not stopped by one, nor re-armed."""
    make, data = _resume_setup(tmp_path)
    seen = []

    def interrupt(logs):
        if logs["step"] == 5:
            seen.append(signal.getsignal(signal.SIGINT))
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trainer = Trainer(
            make(),
            SGD(0.1),
            *data,
            epochs=2,
            batch_size=32,
            rng=2,
            callbacks=[LambdaCallback(on_step_end=interrupt)],
        )
        trainer.fit()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIG_IGN]  # no handler of ours was installed
    assert trainer.epoch == 2 and trainer.step == 26  # the run went to its end


def test_resume_refuses_other_data(tmp_path):
    make, (x_tr, t_tr, x_val, t_val) = _resume_setup(tmp_path)
    Trainer(make(), SGD(0.1), x_tr, t_tr, epochs=1, rng=0, callbacks=[Checkpoint(tmp_path)]).fit()
    with pytest.raises(ValueError, match="same training and validation data"):
        Trainer.resume(tmp_path / "checkpoint.npz", x_tr, (t_tr + 1) % 3, epochs=2)


def test_checkpoint_is_a_loadable_model_file_with_trainer_state(tmp_path):
    x, t = blobs()
    net = MultiLayerNet(20, [8], 3, rng=0)
    Trainer(
        net,
        Adam(0.01),
        x,
        t,
        epochs=2,
        batch_size=100,
        rng=0,
        callbacks=[Checkpoint(tmp_path, metadata={"note": "hello"})],
    ).fit()
    meta = read_metadata(tmp_path / "checkpoint.npz")
    state = meta["user"]["trainer"]
    assert meta["user"]["run"] == {"note": "hello"}
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (2, 12, 0)
    assert state["config"]["batch_size"] == 100
    json.dumps(state["rng_state"])  # the generator state is plain JSON
    with np.load(tmp_path / "checkpoint.npz") as npz:  # the per-step losses: an entry
        assert len(npz[state["history"]["losses"]["__array__"]]) == 12
    assert params_equal(load_model(tmp_path / "checkpoint.npz"), net)


# -- early stopping -------------------------------------------------------------------------------


def test_early_stopping_restores_the_best_epochs_weights():
    # a big network on few noisy samples overfits: the validation loss turns up early
    x, t = blobs(n=260, d=20, spread=0.6, seed=5)
    (x_tr, t_tr), (x_val, t_val) = split(x, t, n_val=100)
    net = MultiLayerNet(20, [128, 128], 3, rng=0)
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots[epoch] = trainer.network.state_dict()

    stopper = EarlyStopping("val_loss", patience=3)
    history = Trainer(
        net,
        Adam(0.01),
        x_tr,
        t_tr,
        x_val,
        t_val,
        epochs=40,
        batch_size=16,
        rng=0,
        callbacks=[Snapshot(), stopper],
    ).fit()

    best = history.best("val_loss")["epoch"]
    assert history.stopped_early and len(history) < 40
    assert stopper.best_epoch == best == history.best_epoch
    assert stopper.stopped_epoch == len(history) == best + 3
    final = net.state_dict()
    assert all(np.array_equal(final[k], snapshots[best][k]) for k in final)
    assert not all(np.array_equal(final[k], snapshots[len(history)][k]) for k in final)
    assert net.loss(x_val, t_val) == pytest.approx(history.val_loss[best - 1], rel=1e-5)


def test_early_stopping_needs_validation_data_and_valid_settings():
    x, t = blobs(n=100)
    tr = Trainer(MultiLayerNet(20, [4], 3), SGD(0.1), x, t, callbacks=[EarlyStopping("val_acc")])
    with pytest.raises(ValueError, match="needs validation data"):
        tr.fit()
    with pytest.raises(ValueError, match="monitor must be one of"):
        EarlyStopping("test_acc")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


# -- the non-finite guard ------------------------------------------------------------------


def test_a_diverging_run_stops_with_the_step_number_and_a_hint():
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    t = rng.integers(0, 10, 300)
    net = MultiLayerNet(784, [100, 100], 10, rng=1)
    trainer = Trainer(net, SGD(1e6), x, t, epochs=5, batch_size=100, rng=0)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    err = info.value
    assert isinstance(err, ValueError)
    # the clipped cross-entropy stays finite (4e17 here): caught as divergence, not as NaN
    assert isinstance(err, DivergedError) and err.cause == "learning rate"
    assert err.loss > 10 * math.log(10)
    # the bad step is reported 1-based, and its update was not applied
    assert err.step == trainer.step + 1 == len(trainer.history.losses) + 1
    assert f"step {err.step}" in str(err) and "lower the learning rate" in str(err)
    assert "1e+06" in str(err)
    assert all(np.isfinite(p).all() for p in net.params.values())


def test_a_diverging_weight_decay_is_named_as_the_cause():
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    t = rng.integers(0, 10, 300)
    net = MultiLayerNet(784, [50], 10, weight_decay_lambda=30.0, rng=1)
    with pytest.raises(DivergedError, match="lower the weight decay") as info:
        Trainer(net, SGD(0.1), x, t, epochs=5, batch_size=100, rng=0).fit()
    assert info.value.cause == "weight decay"


def test_a_healthy_run_is_not_called_diverged():
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    t = rng.integers(0, 10, 300)
    net = MultiLayerNet(784, [50], 10, rng=1)
    history = Trainer(net, SGD(0.1), x, t, epochs=3, batch_size=50, rng=0).fit()
    assert len(history) == 3 and max(history.losses) < 10 * math.log(10)


# -- callbacks, validation ------------------------------------------------------------------------


def test_logging_hooks_are_called_per_epoch_and_per_step():
    x, t = blobs(n=200)
    epochs, steps = [], []
    Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        SGD(0.1),
        x,
        t,
        epochs=2,
        batch_size=50,
        rng=0,
        callbacks=[epochs.append, LambdaCallback(on_step_end=steps.append)],
    ).fit()
    assert [row["epoch"] for row in epochs] == [1, 2]
    assert epochs[1]["val_acc"] is None and 0 <= epochs[1]["train_acc"] <= 1
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert steps[0]["epoch"] == 1 and steps[-1]["epoch"] == 2 and steps[0]["lr"] == 0.1


def test_cosine_schedule_sets_the_learning_rate_each_epoch():
    x, t = blobs(n=200)
    opt = SGD(0.2)
    history = Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        opt,
        x,
        t,
        epochs=4,
        batch_size=50,
        rng=0,
        callbacks=[CosineLR(min_lr=0.0)],
    ).fit()
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert history.lr == pytest.approx(expected)
    assert opt.lr == pytest.approx(expected[-1])


def test_verbose_prints_one_line_per_epoch(capsys):
    x, t = blobs(n=200)
    (x_tr, t_tr), (x_val, t_val) = split(x, t)
    Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        SGD(0.1),
        x_tr,
        t_tr,
        x_val,
        t_val,
        epochs=2,
        batch_size=50,
        rng=0,
        verbose=True,
        progress=False,
    ).fit()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "val acc" in lines[0] and "lr 0.1" in lines[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 1000}, "larger than the training set"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
        ({"epochs": -1}, "epochs must be a whole number >= 1, got -1"),
        ({"x_train": np.full((100, 20), np.nan)}, "training data inputs contain NaN"),
        ({"sampling": "bootstrap"}, "sampling must be"),
        ({"x_val": np.zeros((3, 20))}, "both x_val and t_val"),
        ({"callbacks": [42]}, "callbacks must be"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(kwargs, message):
    x, t = blobs(n=100)
    x = kwargs.pop("x_train", x)
    with pytest.raises((ValueError, TypeError), match=message):
        Trainer(MultiLayerNet(20, [4], 3), SGD(0.1), x, t, **kwargs)


def test_history_round_trips_and_writes_csv(tmp_path):
    x, t = blobs(n=200)
    (x_tr, t_tr), (x_val, t_val) = split(x, t)
    history = Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        SGD(0.1),
        x_tr,
        t_tr,
        x_val,
        t_val,
        epochs=3,
        batch_size=25,
        rng=0,
    ).fit()
    again = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again.to_dict() == history.to_dict()
    path = history.to_csv(tmp_path / "h.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(EPOCH_COLUMNS)
    assert len(lines) == 4
    assert float(lines[3].split(",")[EPOCH_COLUMNS.index("val_acc")]) == history.val_acc[-1]
    assert history.best("val_acc")["val_acc"] == max(history.val_acc)
    history.losses_to_csv(tmp_path / "steps.csv")
    assert len((tmp_path / "steps.csv").read_text().splitlines()) == 1 + 4 * 3


def test_resume_restores_early_stopping_state_and_its_best_weights(tmp_path):
    x, t = blobs(n=260, d=20, spread=0.6, seed=5)
    (x_tr, t_tr), (x_val, t_val) = split(x, t, n_val=100)
    data = (x_tr, t_tr, x_val, t_val)

    def make():
        return MultiLayerNet(20, [64, 64], 3, rng=0)

    straight = make()
    h1 = Trainer(
        straight,
        Adam(0.01),
        *data,
        epochs=30,
        batch_size=16,
        rng=0,
        callbacks=[EarlyStopping("val_loss", patience=3)],
    ).fit()
    assert h1.stopped_early

    first = Trainer(
        make(),
        Adam(0.01),
        *data,
        epochs=2,
        batch_size=16,
        rng=0,
        callbacks=[EarlyStopping("val_loss", patience=3), Checkpoint(tmp_path)],
    )
    first.fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]  # best weights inside
    stopper = EarlyStopping("val_loss", patience=3)
    resumed = Trainer.resume(tmp_path / "checkpoint.npz", *data, epochs=30, callbacks=[stopper])
    assert stopper.best_epoch is not None and stopper.best_state is not None
    h2 = resumed.fit()
    assert h2.best_epoch == h1.best_epoch and len(h2) == len(h1)
    assert params_equal(straight, resumed.network)


def test_one_progress_bar_for_the_run_shows_the_epoch_running_loss_and_accuracy():
    import io

    from dlscratch.training import ProgressBar

    x, t = blobs(n=400)
    stream = io.StringIO()
    bar = ProgressBar(mininterval=0, disable=False, file=stream)
    Trainer(
        MultiLayerNet(20, [8], 3, rng=0),
        SGD(0.1),
        x,
        t,
        epochs=2,
        batch_size=50,
        rng=0,
        callbacks=[bar],
    ).fit()
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    # one bar over both epochs' 16 steps: its count goes past the first epoch's 8
    assert "/16" in text and "12/16" in text and "8/8" not in text
    assert re.search(r"loss \d\.\d{4}, acc 0\.\d{3}", text)
    assert bar.bar is None  # closed
    quiet = ProgressBar(file=io.StringIO())  # not a terminal: no bar, no per-step work
    assert not quiet.enabled and not quiet.wants_step_end


@pytest.mark.parametrize(("sampling", "index_shape"), [("epoch", (200,)), ("random", (4, 50))])
def test_on_a_gpu_the_training_set_is_copied_once_not_per_step(monkeypatch, sampling, index_shape):
    """The device path, with the copy to the GPU replaced by a recording NumPy copy."""
    import dlscratch.training.metrics as metrics_mod
    import dlscratch.training.trainer as trainer_mod

    copies = []  # what the training loop copies (evaluation copies its own batches)

    def fake_to_device(a, device):
        copies.append((np.shape(a), device))
        return np.array(a)

    monkeypatch.setattr(trainer_mod, "to_device", fake_to_device)
    monkeypatch.setattr(metrics_mod, "to_device", lambda a, device: np.array(a))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 6), dtype=np.uint8)
    t = (x[:, 0] > 127).astype(np.int64)

    def train(device):
        net = MultiLayerNet(6, [8], 2, rng=1)
        net.device = device
        trainer = Trainer(net, Adam(0.01), x, t, epochs=2, batch_size=50, sampling=sampling, rng=2)
        trainer.fit()
        return net, trainer

    cpu, _ = train("cpu")
    assert copies == []
    gpu, trainer = train("cuda")
    data_copies = [((200, 6), "cuda"), ((200,), "cuda")]  # once, for the whole run
    index_copies = [(index_shape, "cuda")] * trainer.epoch  # each epoch's indices, at once
    assert trainer.step == 8 and copies == data_copies + index_copies  # nothing per step
    for name in cpu.params:  # the same arithmetic as on the CPU
        np.testing.assert_array_equal(gpu.params[name], cpu.params[name])


def test_json_progress_reports_running_means_and_epoch_rows():
    import io
    import json

    from dlscratch.training.progress import JsonProgress

    x, t = blobs(n=400)
    stream = io.StringIO()
    history = Trainer(MultiLayerNet(20, [8], 3, rng=0), SGD(0.1), x, t, epochs=2, batch_size=50,
                      rng=0, callbacks=[JsonProgress(mininterval=0, file=stream)]).fit()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert len(progress) == 16  # every step, with mininterval 0
    first = progress[:8]
    assert [e["step"] for e in first] == list(range(1, 9)) and first[0]["steps"] == 8
    # the running mean of the epoch's batch losses, as the History recorded them
    np.testing.assert_allclose(first[-1]["loss"], np.mean(history.losses[:8]))
    rows = [e for e in events if e["event"] == "epoch"]
    assert [r["train_acc"] for r in rows] == history.train_acc
