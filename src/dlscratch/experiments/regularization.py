"""Section 6.4: overfitting on 300 samples (6x100 ReLU), curbed by weight decay or dropout."""

from __future__ import annotations

import numpy as np

from dlscratch.experiments.base import (
    experiment,
    iterations_per_epoch,
    pyplot,
    train_iterations,
)
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import SGD

HIDDEN = [100] * 6


def overfit_pair(
    ctx, *, stem, reg_label, make_net, epochs, n_train=300, lr=0.01, batch_size=100, n_test=None
):
    """Train the same network without and with a regulariser; record train/test accuracy.

    ``make_net(regularised: bool) -> network``. Both runs start from the same
    weights and see the same mini-batches. Returns ``{label: TrainLog}``.
    """
    (x_train, t_train), (x_test, t_test) = ctx.mnist()
    x_train, t_train = x_train[:n_train], t_train[:n_train]
    if n_test is not None:
        x_test, t_test = x_test[:n_test], t_test[:n_test]
    per_epoch = iterations_per_epoch(n_train, batch_size)
    ctx.config.update(
        train_samples=n_train,
        test_samples=len(x_test),
        batch_size=batch_size,
        optimizer=f"SGD(lr={lr})",
        epochs=epochs,
        iterations=epochs * per_epoch,
        hidden=HIDDEN,
        activation="relu",
        weight_init="he",
        note="both runs start from the same weights and see the same batches",
    )
    logs = {}
    for label, reg in (("without", False), (reg_label, True)):
        net = make_net(reg)
        logs[label] = train_iterations(
            net,
            SGD(lr=lr),
            x_train,
            t_train,
            iterations=epochs * per_epoch,
            batch_size=batch_size,
            rng=ctx.rng("batches"),
            eval_every=per_epoch,
            eval_sets={"train": (x_train, t_train), "test": (x_test, t_test)},
            record_loss=False,
        )
        ctx.log(
            f"{label}: train {logs[label].final('train'):.4f}, test {logs[label].final('test'):.4f}"
        )

    gaps = {}
    for label, log in logs.items():
        tr, te = log.final("train"), log.final("test")
        gaps[label] = tr - te
        # Last 10 epochs' mean gap: less sensitive to the noise of a single epoch.
        tail = min(10, len(log.accuracy["train"]))
        mean_gap = float(
            np.mean(np.subtract(log.accuracy["train"][-tail:], log.accuracy["test"][-tail:]))
        )
        ctx.summary[label] = {
            "final_train_acc": tr,
            "final_test_acc": te,
            "gap": tr - te,
            f"mean_gap_last_{tail}_epochs": mean_gap,
        }
    rows = []
    for label, log in logs.items():
        rows += [
            [label, e, i, a, b]
            for e, (i, a, b) in enumerate(
                zip(log.eval_iterations, log.accuracy["train"], log.accuracy["test"])
            )
        ]
    ctx.write_csv(stem, ["run", "epoch", "iteration", "train_acc", "test_acc"], rows)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (label, log) in zip(axes, logs.items()):
        e = np.arange(len(log.accuracy["train"]))
        ax.plot(e, log.accuracy["train"], label="train", markevery=10, marker="o", ms=3)
        ax.plot(e, log.accuracy["test"], label="test", markevery=10, marker="s", ms=3)
        ax.set_title(f"{label}: gap {gaps[label]:.3f}")
        ax.set_xlabel("epochs")
        ax.set_ylim(0, 1.0)
        ax.legend(loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    ctx.save_figure(fig, stem)
    return logs, gaps


@experiment(
    "weight-decay",
    title="Overfitting and weight decay",
    section="6.4.2",
    needs_mnist=True,
    summary="overfitting on 300 samples with and without λ=0.1: train vs test accuracy",
    shows="Without regularisation the 7-layer network memorises its 300 training samples "
    "(training accuracy near 1) while test accuracy lags far behind; weight decay λ = 0.1 "
    "narrows that gap.",
)
def run_weight_decay(ctx):
    lam = 0.1

    def make(reg):
        return MultiLayerNet(
            784, HIDDEN, 10, weight_decay_lambda=lam if reg else 0.0, rng=ctx.rng("init")
        )

    ctx.config["weight_decay_lambda"] = lam
    label = f"weight decay λ={lam:g}"
    logs, gaps = overfit_pair(
        ctx,
        stem="weight-decay",
        reg_label=label,
        make_net=make,
        epochs=ctx.pick(100, 201),
        n_test=ctx.pick(1000, None),
    )
    _compare(ctx, logs, gaps, label)


@experiment(
    "dropout",
    title="Overfitting and dropout",
    section="6.4.3",
    needs_mnist=True,
    summary="the same overfitting setup with dropout 0.2 (301 epochs)",
    shows="Dropout (ratio 0.2) keeps the network from memorising the 300 training samples: "
    "training accuracy stays below 1 and the train-test gap is smaller than without it.",
)
def run_dropout(ctx):
    ratio = 0.2

    def make(reg):
        return MultiLayerNet(
            784, HIDDEN, 10, use_dropout=reg, dropout_ratio=ratio, rng=ctx.rng("init")
        )

    ctx.config["dropout_ratio"] = ratio
    label = f"dropout {ratio:g}"
    logs, gaps = overfit_pair(
        ctx,
        stem="dropout",
        reg_label=label,
        make_net=make,
        epochs=ctx.pick(100, 301),
        n_test=ctx.pick(1000, None),
    )
    _compare(ctx, logs, gaps, label)


def _compare(ctx, logs, gaps, label):
    s = ctx.summary
    ctx.compare("without: final train accuracy", s["without"]["final_train_acc"], "≈ 1.0")
    ctx.compare("without: train - test gap", gaps["without"], "large")
    ctx.compare(f"{label}: final train accuracy", s[label]["final_train_acc"], "below 1.0")
    ctx.compare(f"{label}: train - test gap", gaps[label], "smaller than without")
    ctx.summary["gap_reduction"] = gaps["without"] - gaps[label]
    ctx.finding(
        f"The train-test gap shrinks from {gaps['without']:.3f} to {gaps[label]:.3f} with {label}."
    )
