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
WITHOUT = "without"

#: The book's printed end points (section 6.4), and the tolerance we state for each:
#: two standard deviations of our own end points over seeds 0-5 of the full-size setup,
#: measured by running each setup with six seeds (weight decay: train 0.83-0.95, test
#: 0.68-0.75; book-form dropout: train 0.63-0.72, test 0.51-0.58).
BOOK_WEIGHT_DECAY = {"train": 0.927, "test": 0.721}
TOL_WEIGHT_DECAY = {"train": 0.08, "test": 0.05}
BOOK_DROPOUT = {"train": 0.67, "test": 0.55}
TOL_DROPOUT = {"train": 0.07, "test": 0.05}


def overfit_runs(ctx, *, stem, variants, epochs, n_train=300, lr=0.01, batch_size=100, n_test=None):
    """Train each of ``variants`` (``{label: make_net()}``) on the book's overfitting setup.

    Every run starts from the same weights (each ``make_net`` draws from ``ctx.rng("init")``)
    and sees the same mini-batches. Records train/test accuracy per epoch, the summary
    per run and the figure (one panel per run). Returns ``({label: TrainLog}, {label: gap})``.
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
        runs={label: repr(make()) for label, make in variants.items()},
        note="every run starts from the same weights and sees the same batches",
    )
    logs = {}
    for label, make in variants.items():
        logs[label] = train_iterations(
            make(),
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
    fig, axes = plt.subplots(1, len(logs), figsize=(5.2 * len(logs), 4), sharey=True)
    for ax, (label, log) in zip(np.atleast_1d(axes), logs.items()):
        e = np.arange(len(log.accuracy["train"]))
        ax.plot(e, log.accuracy["train"], label="train", markevery=10, marker="o", ms=3)
        ax.plot(e, log.accuracy["test"], label="test", markevery=10, marker="s", ms=3)
        ax.set_title(
            f"{label}\nfinal train {log.final('train'):.3f}, test {log.final('test'):.3f}, "
            f"gap {gaps[label]:.3f}",
            fontsize=9,
        )
        ax.set_xlabel("epochs")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")  # both curves start low and rise: the corner stays empty
    fig.suptitle(
        f"{len(ctx.mnist()[0][0][:n_train])} MNIST training images, 6x100 ReLU, SGD lr {lr}, "
        f"batch {batch_size}, {epochs} epochs",
        fontsize=10,
    )
    fig.tight_layout()
    ctx.save_figure(fig, stem)
    return logs, gaps


def _narrows(ctx, logs, gaps, label) -> bool:
    """Record the book's lesson for ``label``: it narrows the train-test gap (judged both on
    the last epoch and on the mean of the last ten epochs)."""
    tail = next(k for k in ctx.summary[WITHOUT] if k.startswith("mean_gap_last"))
    narrows = bool(
        gaps[label] < gaps[WITHOUT] and ctx.summary[label][tail] < ctx.summary[WITHOUT][tail]
    )
    ctx.summary[label]["gap_reduction"] = gaps[WITHOUT] - gaps[label]
    ctx.claim(
        f"{label} narrows the train-test gap.",
        narrows,
        f"gap {gaps[WITHOUT]:.3f} without, {gaps[label]:.3f} with; mean of the last ten "
        f"epochs {ctx.summary[WITHOUT][tail]:.3f} vs {ctx.summary[label][tail]:.3f}",
    )
    return narrows


def _compare_end_points(ctx, label, narrows, book, tol, setup):
    s = ctx.summary[label]
    for which in ("train", "test"):
        ctx.reference(
            f"{label}: final {which} accuracy",
            s[f"final_{which}_acc"],
            book[which],
            tol=tol[which],
            claim="the gap narrows",
            holds=narrows,
            note=f"{setup}; tolerance: two standard deviations over seeds 0-5",
        )


def _compare_without(ctx, gaps):
    s = ctx.summary[WITHOUT]
    ctx.reference(
        "without: final train accuracy",
        s["final_train_acc"],
        expected="≈ 1.0 (the book: almost 100% after about 100 epochs)",
        claim="the plain network memorises its 300 images",
        holds=s["final_train_acc"] >= 0.98,
    )
    ctx.reference(
        "without: train - test gap",
        gaps[WITHOUT],
        expected="large (≥ 0.15)",
        claim="the plain network overfits",
        holds=gaps[WITHOUT] >= 0.15,
    )


@experiment(
    "weight-decay",
    title="Overfitting and weight decay",
    section="6.4.2",
    needs_mnist=True,
    summary="overfitting on 300 samples with and without λ=0.1 (201 epochs): train vs test "
    "accuracy (book: 0.927 / 0.721)",
    shows="The 7-layer network trained on 300 images with and without weight decay λ = 0.1 "
    "(0.5·λ·ΣW² over every weight matrix, as the book); the book's lesson is that without it "
    "training accuracy reaches 1 while test accuracy lags, and that weight decay narrows the gap.",
)
def run_weight_decay(ctx):
    lam = 0.1
    label = f"weight decay λ={lam:g}"

    def make(lam):
        return lambda: MultiLayerNet(784, HIDDEN, 10, weight_decay_lambda=lam, rng=ctx.rng("init"))

    ctx.config["weight_decay_lambda"] = lam
    ctx.config["penalty"] = "0.5 * lambda * sum(W**2) over all 7 weight matrices, as the book"
    epochs = ctx.pick(100, 201)
    logs, gaps = overfit_runs(
        ctx,
        stem="weight-decay",
        variants={WITHOUT: make(0.0), label: make(lam)},
        epochs=epochs,
        n_test=ctx.pick(1000, None),
    )
    _compare_without(ctx, gaps)
    narrows = _narrows(ctx, logs, gaps, label)
    _compare_end_points(
        ctx, label, narrows, BOOK_WEIGHT_DECAY, TOL_WEIGHT_DECAY, f"{epochs} epochs"
    )
    ctx.finding(
        "Measured separately, ours differs from the book's 0.927 / 0.721 by the seed: with the "
        "book's setup (the same penalty over all weights, He init, 300 images, SGD lr 0.01, "
        "batch 100, 201 epochs) seeds 0-5 end at train 0.83-0.95 and test 0.68-0.75 "
        "(mean 0.90 / 0.72), "
        "and float64 gives the same numbers as float32 to ±0.002."
    )


@experiment(
    "dropout",
    title="Overfitting and dropout",
    section="6.4.3",
    needs_mnist=True,
    summary="the same overfitting setup with dropout 0.2 (301 epochs), the book's form and the "
    "inverted form side by side (book: train 0.67 / test 0.55)",
    shows="The same 7-layer network on 300 images without dropout, with the book's dropout "
    "(mask while training, × (1 − ratio) at test time) and with inverted dropout (÷ (1 − ratio) "
    "while training); the book's lesson is that dropout narrows the train-test gap.",
)
def run_dropout(ctx):
    ratio = 0.2
    book_label = f"dropout {ratio:g}, book's form"
    inverted_label = f"dropout {ratio:g}, inverted"

    def make(**kw):
        return lambda: MultiLayerNet(784, HIDDEN, 10, rng=ctx.rng("init"), **kw)

    ctx.config["dropout_ratio"] = ratio
    epochs = ctx.pick(100, 301)
    logs, gaps = overfit_runs(
        ctx,
        stem="dropout",
        variants={
            WITHOUT: make(),
            book_label: make(use_dropout=True, dropout_ratio=ratio, dropout_scale="book"),
            inverted_label: make(use_dropout=True, dropout_ratio=ratio),
        },
        epochs=epochs,
        n_test=ctx.pick(1000, None),
    )
    _compare_without(ctx, gaps)
    narrows_book = _narrows(ctx, logs, gaps, book_label)
    _compare_end_points(
        ctx, book_label, narrows_book, BOOK_DROPOUT, TOL_DROPOUT, f"{epochs} epochs"
    )
    narrows_inverted = _narrows(ctx, logs, gaps, inverted_label)
    ctx.reference(
        f"{inverted_label}: train - test gap",
        gaps[inverted_label],
        expected="smaller than without",
        claim="the gap narrows",
        holds=narrows_inverted,
        note="not the book's form: with plain SGD it trains like a larger learning rate",
    )
    ctx.finding(
        "The two forms agree at test time but not in training: the book's form passes "
        f"activations {1 - ratio:g} times as large as the inverted form's, so plain SGD "
        "trains more slowly with it. Over seeds 0-5 (full size) the book's form ended at train "
        "0.63-0.72 / test 0.51-0.58 (gap 0.10-0.14) and the inverted form at train 0.94-0.98 / "
        "test 0.69-0.75 (gap 0.22-0.26), against 0.23-0.26 without dropout."
    )
