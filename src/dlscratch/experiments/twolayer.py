"""Section 4.5: training the two-layer network on MNIST with mini-batch SGD."""

from __future__ import annotations

import numpy as np

from dlscratch.experiments.base import (
    experiment,
    iterations_per_epoch,
    pyplot,
    train_iterations,
)
from dlscratch.nets import TwoLayerNet
from dlscratch.optim import SGD

BOOK_TEST_ACCURACY = 0.946


@experiment(
    "two-layer-net",
    title="Training the two-layer network",
    section="4.5",
    needs_mnist=True,
    summary="TwoLayerNet 784-50-10 sigmoid, lr 0.1, batch 100, 10000 iterations: loss curve and "
    "train/test accuracy per epoch (book: test ≈ 0.946)",
    shows="The mini-batch loss falls from ln 10 ≈ 2.3 as SGD proceeds, and training and test "
    "accuracy rise together epoch by epoch: the network learns without overfitting.",
)
def run_two_layer_net(ctx):
    (x_train, t_train), (x_test, t_test) = ctx.mnist()
    n_train = ctx.pick(5000, len(x_train))
    n_test = ctx.pick(1000, len(x_test))
    x_train, t_train = x_train[:n_train], t_train[:n_train]
    x_test, t_test = x_test[:n_test], t_test[:n_test]
    iterations = ctx.pick(400, 10000)
    batch_size, lr = 100, 0.1
    # One epoch = N / batch updates (600 on full MNIST); quick mode evaluates more often.
    eval_every = ctx.pick(50, iterations_per_epoch(n_train, batch_size))
    ctx.config.update(
        network="TwoLayerNet(784, 50, 10, activation='sigmoid', weight_init_std=0.01)",
        optimizer=f"SGD(lr={lr})",
        iterations=iterations,
        batch_size=batch_size,
        train_samples=n_train,
        test_samples=n_test,
        eval_every=eval_every,
        sampling="random with replacement (np.random.choice, as the book)",
    )
    net = TwoLayerNet(784, 50, 10, rng=ctx.rng("init"))
    log = train_iterations(
        net,
        SGD(lr=lr),
        x_train,
        t_train,
        iterations=iterations,
        batch_size=batch_size,
        rng=ctx.rng("batches"),
        eval_every=eval_every,
        eval_sets={"train": (x_train, t_train), "test": (x_test, t_test)},
    )
    train_acc, test_acc = log.final("train"), log.final("test")
    ctx.summary.update(
        final_train_accuracy=train_acc,
        final_test_accuracy=test_acc,
        first_loss=log.losses[0],
        mean_loss_last_100=float(np.mean(log.losses[-100:])),
        train_seconds=log.seconds,
    )
    ctx.compare("first mini-batch loss", log.losses[0], 2.30, "ln 10 = 2.303: a uniform guess")
    ctx.compare("final test accuracy", test_acc, BOOK_TEST_ACCURACY)
    ctx.compare("final train - test accuracy", train_acc - test_acc, "≈ 0 (no overfitting)")
    ctx.finding(
        f"After {iterations} updates: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}."
    )
    ctx.write_csv("loss", ["iteration", "loss"], zip(range(1, iterations + 1), log.losses))
    ctx.write_csv(
        "accuracy",
        ["evaluation", "iteration", "train_acc", "test_acc"],
        zip(log.epochs, log.eval_iterations, log.accuracy["train"], log.accuracy["test"]),
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(np.arange(1, iterations + 1), log.losses, lw=0.6)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("mini-batch loss")
    ax = axes[1]
    epochs = np.array(log.eval_iterations) / eval_every
    ax.plot(epochs, log.accuracy["train"], "o-", ms=4, label="train acc")
    ax.plot(epochs, log.accuracy["test"], "s--", ms=4, label="test acc")
    ax.set_xlabel("epochs" if not ctx.quick else f"evaluations (every {eval_every} iterations)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.legend(loc="lower right")
    ax.set_title("accuracy per epoch")
    fig.tight_layout()
    ctx.save_figure(fig, "two-layer-net")
