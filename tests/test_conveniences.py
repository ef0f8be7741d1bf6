"""Keras- and PyTorch-style conveniences: (epoch, logs) callbacks, History.history, summary."""

import doctest

import numpy as np
import pytest

import dlscratch.summary
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import get_optimizer
from dlscratch.summary import summary
from dlscratch.training import History, LambdaCallback, Trainer


def tiny_run(callbacks, *, val=True, epochs=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(int)
    net = MultiLayerNet(4, [8], 2, rng=0)
    args = (x[:40], t[:40], x[40:], t[40:]) if val else (x, t)
    trainer = Trainer(
        net,
        get_optimizer("adam", lr=0.01),
        *args,
        epochs=epochs,
        batch_size=10,
        rng=0,
        callbacks=callbacks,
    )
    return trainer.fit()


# -- callbacks ---------------------------------------------------------------------------------


def test_keras_style_epoch_callback_gets_the_epoch_and_the_logs():
    seen = []
    history = tiny_run(
        [LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs)))]
    )
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [logs["val_acc"] for _, logs in seen] == history.val_acc
    assert seen[-1][1] == history.epochs[-1] and seen[-1][1] is not history.epochs[-1]


def test_the_logs_only_form_keeps_working_also_as_a_plain_callable():
    rows, plain, keras = [], [], []
    tiny_run(
        [
            LambdaCallback(on_epoch_end=rows.append),  # a builtin: no signature needed
            lambda logs: plain.append(logs["epoch"]),  # wrapped by the Trainer
            lambda epoch, logs: keras.append(epoch),
        ]
    )
    assert [r["epoch"] for r in rows] == plain == keras == [1, 2, 3]


def test_forms_are_told_apart_by_required_positional_parameters():
    got = []

    def with_default(logs, scale=2):  # one required: the logs form
        got.append(("default", logs["epoch"] * scale))

    def star(*args):  # only *args: the Keras form
        got.append(("star", args[0]))

    class Recorder:
        def __call__(self, epoch, logs):  # a callable object: its bound signature counts
            got.append(("object", epoch))

    tiny_run([LambdaCallback(on_epoch_end=f) for f in (with_default, star, Recorder())], epochs=1)
    assert sorted(got) == [("default", 2), ("object", 1), ("star", 1)]
    with pytest.raises(TypeError, match=r"must take \(logs\) or \(epoch, logs\).*a, b, c"):
        LambdaCallback(on_epoch_end=lambda a, b, c: None)


def test_step_callbacks_accept_both_forms():
    keras, plain = [], []
    tiny_run(
        [
            LambdaCallback(on_step_end=lambda step, logs: keras.append((step, logs["step"]))),
            LambdaCallback(on_step_end=lambda logs: plain.append(logs["loss"])),
        ],
        epochs=2,
    )
    assert keras == [(s, s) for s in range(1, 9)]  # 40 samples / 10 per batch, 2 epochs
    assert len(plain) == 8 and all(np.isfinite(plain))


# -- History.history -------------------------------------------------------------------------


def test_history_is_a_dict_of_lists_as_in_keras():
    history = tiny_run([])
    h = history.history
    assert isinstance(h, dict) and h["val_acc"] == history.val_acc and len(h["val_acc"]) == 3
    assert h["epoch"] == [1, 2, 3] and h["train_loss"] == history.train_loss
    h["val_acc"].append(0.0)  # a copy: the History is not changed
    assert len(history.val_acc) == 3
    no_val = tiny_run([], val=False).history
    assert "val_acc" not in no_val and "val_loss" not in no_val and len(no_val["train_acc"]) == 3
    assert History().history == {}


# -- summary ---------------------------------------------------------------------------------


def test_summary_of_a_fully_connected_network_counts_every_parameter():
    net = MultiLayerNet(784, [50, 20], 10, use_batchnorm=True, use_dropout=True, rng=0)
    text = summary(net)
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert "Affine1        Affine" in text and "(None, 50)" in text
    counts = {line.split()[0]: int(line.split()[-1].replace(",", "")) for line in lines[2:-3]}
    assert counts["Affine1"] == 784 * 50 + 50 and counts["BatchNorm1"] == 100
    assert counts["Affine3"] == 20 * 10 + 10 and counts["Dropout2"] == 0
    total = sum(int(p.size) for p in net.params.values())
    assert f"Total params: {total:,}" in text and sum(counts.values()) == total
    assert lines[-1] == "Buffers (not trained): 140"  # running mean and variance, 2 x (50+20)


def test_summary_of_a_convolutional_network_shows_4d_shapes():
    from dlscratch.nets.cnn import SimpleConvNet

    net = SimpleConvNet(rng=0)
    text = summary(net)
    assert "(None, 1, 28, 28)" in text and "(None, 30, 24, 24)" in text
    assert "(None, 30, 12, 12)" in text and "(None, 10)" in text
    total = sum(int(p.size) for p in net.params.values())
    assert f"Total params: {total:,}" in text


def test_summary_leaves_the_network_as_it_was():
    net = MultiLayerNet(6, [5], 3, use_batchnorm=True, use_dropout=True, rng=1)
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    before, state = net.predict(x), {k: v.copy() for k, v in net.state_dict().items()}
    summary(net)
    assert np.array_equal(net.predict(x), before)
    assert all(np.array_equal(v, state[k]) for k, v in net.state_dict().items())


def test_summary_input_shape_is_checked():
    net = MultiLayerNet(6, [5], 3, rng=1)
    assert "(None, 6)" in summary(net, input_shape=6)
    with pytest.raises(ValueError, match=r"layer Affine1 \(Affine\) cannot take input of shape"):
        summary(net, input_shape=(7,))
    with pytest.raises(ValueError, match="input_shape must be the shape of one sample"):
        summary(net, input_shape=(0, 3))


def test_summary_docstring_example():
    result = doctest.testmod(dlscratch.summary)
    assert result.attempted >= 2 and result.failed == 0
