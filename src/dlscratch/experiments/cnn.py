"""Chapters 7-8: im2col worked out, SimpleConvNet's filters and curves, DeepConvNet's mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlscratch.experiments.base import (
    experiment,
    iterations_per_epoch,
    pyplot,
    train_iterations,
)
from dlscratch.layers import Convolution, col2im, im2col


# -- im2col ----------------------------------------------------------------------------------------
@experiment(
    "im2col",
    title="im2col: a convolution as one matrix product",
    section="7.4.3",
    summary="im2col's shapes and numbers on a tiny input, checked against loops",
    shows="A 1x2x4x4 input with 3x3 windows (stride 1, no padding) becomes a 4x18 matrix, one row "
    "per output pixel, one column per (channel, row, column) of a window; multiplied by the "
    "filters as an 18xFN matrix it gives the convolution, equal to a loop over output pixels; "
    "col2im sends the entries back, adding up where windows overlap.",
)
def run_im2col(ctx):
    N, C, H, W, FH, FW, FN = 1, 2, 4, 4, 3, 3, 2
    x = np.arange(N * C * H * W, dtype=np.float64).reshape(N, C, H, W)
    filters = ctx.rng("filters").integers(-2, 3, (FN, C, FH, FW)).astype(np.float64)
    col = im2col(x, FH, FW)
    OH, OW = H - FH + 1, W - FW + 1
    # the same numbers by a loop over output pixels
    loop = np.array(
        [x[0, :, y : y + FH, xx : xx + FW].ravel() for y in range(OH) for xx in range(OW)]
    )
    conv = Convolution(filters, np.zeros(FN)).forward(x)
    by_product = (col @ filters.reshape(FN, -1).T).reshape(N, OH, OW, FN).transpose(0, 3, 1, 2)
    by_loop = np.array(
        [
            [
                [(x[0, :, y : y + FH, xx : xx + FW] * filters[f]).sum() for xx in range(OW)]
                for y in range(OH)
            ]
            for f in range(FN)
        ]
    )[None]
    counts = col2im(np.ones_like(col), x.shape, FH, FW)
    # the book's own example (section 7.4.3): 7x7 images with 3 channels, 5x5 windows
    rng = ctx.rng("book example")
    book_shapes = [
        list(im2col(rng.random((n, 3, 7, 7)), 5, 5, stride=1, pad=0).shape) for n in (1, 10)
    ]
    ctx.reference("im2col shape, x1 = rand(1, 3, 7, 7), 5x5", book_shapes[0], [9, 75])
    ctx.reference("im2col shape, x2 = rand(10, 3, 7, 7), 5x5", book_shapes[1], [90, 75])
    ctx.config.update(input_shape=[N, C, H, W], filter_shape=[FN, C, FH, FW], stride=1, pad=0)
    ctx.summary.update(
        col_shape=list(col.shape),
        expected_col_shape=[N * OH * OW, C * FH * FW],
        col_equals_loop=bool(np.array_equal(col, loop)),
        conv_equals_loop=bool(np.allclose(conv, by_loop) and np.allclose(by_product, by_loop)),
        col2im_counts=counts[0, 0].astype(int).tolist(),
    )
    ctx.reference(
        "col shape (N*OH*OW, C*FH*FW) of the 1x2x4x4 input",
        list(col.shape),
        expected="[4, 18] by the formula",
        claim="the shape follows OH = (H + 2P - FH)/S + 1",
        holds=list(col.shape) == [N * OH * OW, C * FH * FW],
    )
    ctx.claim(
        "im2col and the convolution by one matrix product equal loops over output pixels",
        ctx.summary["col_equals_loop"] and ctx.summary["conv_equals_loop"],
    )
    ctx.reference(
        "col2im of ones: times each pixel is used (channel 0, row 0)",
        counts[0, 0, 0].astype(int).tolist(),
        expected="[1, 2, 2, 1]: overlapping windows add up",
        claim="col2im adds the entries of overlapping windows",
        holds=counts[0, 0, 0].astype(int).tolist() == [1, 2, 2, 1],
    )
    if not (ctx.summary["col_equals_loop"] and ctx.summary["conv_equals_loop"]):
        raise AssertionError("im2col disagrees with the loop reference")
    ctx.finding(
        f"im2col turns the {N}x{C}x{H}x{W} input into a {col.shape[0]}x{col.shape[1]} matrix; "
        "the convolution by one matrix product equals the loop over output pixels exactly."
    )
    header = ["row (output pixel)"] + [
        f"c{c}_{i}{j}" for c in range(C) for i in range(FH) for j in range(FW)
    ]
    ctx.write_csv("im2col", header, [[r, *row] for r, row in enumerate(col)])

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 1, 4]})
    for c in range(C):
        ax = axes[c]
        ax.imshow(x[0, c], cmap="Blues")
        for (i, j), v in np.ndenumerate(x[0, c]):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=9)
        ax.set_title(f"input channel {c}")
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[2]
    ax.imshow(col, cmap="Blues", aspect="auto")
    for (i, j), v in np.ndenumerate(col):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7)
    ax.axvline(FH * FW - 0.5, color="k")
    ax.set_title(f"im2col: {col.shape[0]} windows x {col.shape[1]} = C*FH*FW entries")
    ax.set_yticks(range(col.shape[0]))
    ax.set_xticks(range(col.shape[1]))
    ax.set_ylabel("output pixel (row)")
    ax.set_xlabel("channel 0 | channel 1")
    fig.tight_layout()
    ctx.save_figure(fig, "im2col")


# -- training helpers ------------------------------------------------------------------------------
def _subset(ctx, n_train, n_test):
    (x, t), (x_test, t_test) = ctx.mnist()
    rng = ctx.rng("subset")
    idx = rng.permutation(len(x))[:n_train] if n_train < len(x) else np.arange(len(x))
    return x[idx], t[idx], x_test[:n_test], t_test[:n_test]


def _draw_filters(ax_grid, W, title_row):
    for k, ax in enumerate(ax_grid):
        ax.imshow(W[k, 0], cmap="gray_r", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    ax_grid[0].set_title(title_row, loc="left", fontsize=9)


# -- conv-filters ----------------------------------------------------------------------------------
@experiment(
    "conv-filters",
    title="The first layer's filters before and after training",
    section="7.6.1",
    needs_mnist=True,
    summary="SimpleConvNet's 30 5x5 filters at initialisation and after training, and two "
    "learned filters' responses to one digit",
    shows="Random filters look like noise; after training they become smooth blobs that respond "
    "to edges and strokes of one orientation: applied to a digit, two of them light up "
    "different edges.",
)
def run_conv_filters(ctx):
    from dlscratch.nets import SimpleConvNet
    from dlscratch.optim import Adam

    n_train, n_test = ctx.pick(1000, 60000), ctx.pick(300, 10000)
    batch, epochs = 100, ctx.pick(3, 2)
    x, t, x_test, t_test = _subset(ctx, n_train, n_test)
    iterations = epochs * iterations_per_epoch(len(x), batch)
    net = SimpleConvNet(rng=ctx.rng("init"))
    before = net.params["W1"].copy()
    ctx.config.update(
        train_samples=len(x),
        test_samples=len(x_test),
        iterations=iterations,
        batch_size=batch,
        optimizer="Adam(lr=0.001)",
        network="SimpleConvNet (30 filters 5x5)",
    )
    train_iterations(
        net,
        Adam(lr=0.001),
        x,
        t,
        iterations=iterations,
        batch_size=batch,
        rng=ctx.rng("batches"),
        record_loss=False,
    )
    after = net.params["W1"].copy()
    acc = float(net.accuracy(x_test, t_test))

    def roughness(W):  # mean squared difference of neighbouring filter weights / variance
        d = np.diff(W, axis=2) ** 2
        return float(d.mean() / W.var())

    ctx.summary.update(
        test_accuracy=acc,
        filter_std_before=float(before.std()),
        filter_std_after=float(after.std()),
        roughness_before=roughness(before),
        roughness_after=roughness(after),
    )
    ctx.compare("filter roughness (neighbour diff^2 / var), before", roughness(before), "noise ≈ 2")
    ctx.reference(
        "filter roughness, after training",
        roughness(after),
        expected="smoother than before",
        claim="training turns noise into smooth, structured filters",
        holds=roughness(after) < roughness(before),
    )
    ctx.compare("test accuracy after training", acc, "≈ 0.99 after the book's 20 epochs")
    ctx.finding(
        f"After {iterations} updates the filters' spread grew from {before.std():.3g} to "
        f"{after.std():.3g}; test accuracy {acc:.3f} on {len(x_test)} images."
    )
    rows = [
        [stage, k, i, j, float(W[k, 0, i, j])]
        for stage, W in (("before", before), ("after", after))
        for k in range(W.shape[0])
        for i in range(5)
        for j in range(5)
    ]
    ctx.write_csv("filters", ["stage", "filter", "row", "col", "weight"], rows)

    plt = pyplot()
    fig, axes = plt.subplots(4, 15, figsize=(12, 3.6))
    _draw_filters(axes[0], before[:15], "before training")
    _draw_filters(axes[1], before[15:], "")
    _draw_filters(axes[2], after[:15], "after training")
    _draw_filters(axes[3], after[15:], "")
    fig.tight_layout()
    ctx.save_figure(fig, "conv-filters")

    # responses of two learned filters to one digit (the strongest-weighted ones)
    digit = x_test[:1].reshape(1, 1, 28, 28).astype(net.dtype)
    conv = net.layers["Conv1"]
    response = conv.forward(digit)[0]
    picks = np.argsort(-after.reshape(30, -1).std(axis=1))[:2]
    fig, axes = plt.subplots(1, 5, figsize=(11, 2.6))
    axes[0].imshow(digit[0, 0], cmap="gray_r")
    axes[0].set_title(f"digit ({int(t_test[0])})")
    for n, k in enumerate(picks):
        axes[1 + 2 * n].imshow(after[k, 0], cmap="gray_r")
        axes[1 + 2 * n].set_title(f"filter {k}")
        axes[2 + 2 * n].imshow(response[k], cmap="gray_r")
        axes[2 + 2 * n].set_title(f"response of filter {k}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    ctx.save_figure(fig, "conv-filter-responses")
    ctx.summary["response_filters"] = [int(k) for k in picks]


# -- simple-cnn ------------------------------------------------------------------------------------
@experiment(
    "simple-cnn",
    title="SimpleConvNet against a fully connected network",
    section="7.5",
    needs_mnist=True,
    summary="train/test accuracy per epoch of SimpleConvNet and of a 784-100-100-10 network on "
    "the same data, batches and optimizer (Adam 0.001, batch 100)",
    shows="On the same budget the convolutional network reaches a higher test accuracy than the "
    "fully connected one (the book: about 99% after 20 epochs, against about 98%).",
)
def run_simple_cnn(ctx):
    from dlscratch.nets import MultiLayerNet, SimpleConvNet
    from dlscratch.optim import Adam

    n_train, n_test = ctx.pick(1000, 60000), ctx.pick(300, 10000)
    batch, epochs = 100, ctx.pick(3, 20)
    x, t, x_test, t_test = _subset(ctx, n_train, n_test)
    n_eval = ctx.pick(300, 10000)
    per_epoch = iterations_per_epoch(len(x), batch)
    ctx.config.update(
        train_samples=len(x),
        test_samples=len(x_test),
        epochs=epochs,
        batch_size=batch,
        optimizer="Adam(lr=0.001)",
        networks={"SimpleConvNet": "conv 30x5x5 - pool - 100 - 10", "MLP": "784-100-100-10 ReLU"},
    )
    nets = {
        "SimpleConvNet": SimpleConvNet(rng=ctx.rng("init", "cnn")),
        "MLP": MultiLayerNet(784, [100, 100], 10, rng=ctx.rng("init", "mlp")),
    }
    logs = {}
    for name, net in nets.items():
        logs[name] = train_iterations(
            net,
            Adam(lr=0.001),
            x,
            t,
            iterations=epochs * per_epoch,
            batch_size=batch,
            rng=ctx.rng("batches"),
            eval_every=per_epoch,
            record_loss=False,
            eval_sets={"train": (x[:n_eval], t[:n_eval]), "test": (x_test, t_test)},
        )
        ctx.log(f"{name}: test {logs[name].final('test'):.4f} in {logs[name].seconds:.1f} s")
    for name, log in logs.items():
        ctx.summary[name] = {
            "final_train_accuracy": log.final("train"),
            "final_test_accuracy": log.final("test"),
            "seconds": log.seconds,
        }
    cnn_acc, mlp_acc = logs["SimpleConvNet"].final("test"), logs["MLP"].final("test")
    ctx.compare("SimpleConvNet test accuracy", cnn_acc, "≈ 0.99 after 20 epochs (book)")
    ctx.compare("MLP test accuracy (same budget)", mlp_acc, "≈ 0.98")
    ctx.claim(
        "the convolutional network beats the fully connected one on the same budget",
        cnn_acc > mlp_acc,
        f"{cnn_acc:.4f} vs {mlp_acc:.4f}",
    )
    ctx.finding(
        "Final test accuracy: "
        + ", ".join(f"{k} {v.final('test'):.4f}" for k, v in logs.items())
        + f" after {epochs} epoch(s) on {len(x)} images."
    )
    rows = [
        [name, e, log.accuracy["train"][e], log.accuracy["test"][e]]
        for name, log in logs.items()
        for e in log.epochs
    ]
    ctx.write_csv("accuracy", ["network", "epoch", "train_accuracy", "test_accuracy"], rows)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, log), color in zip(logs.items(), ("tab:blue", "tab:orange")):
        ax.plot(log.epochs, log.accuracy["train"], "o-", color=color, label=f"{name} train")
        ax.plot(log.epochs, log.accuracy["test"], "s--", color=color, label=f"{name} test")
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.legend(loc="lower right")
    ax.set_title("SimpleConvNet vs fully connected, Adam lr 0.001")
    fig.tight_layout()
    ctx.save_figure(fig, "simple-cnn")


# -- deep-cnn --------------------------------------------------------------------------------------
def find_deep_weights(weights=None) -> Path:
    """``deep_convnet_params.pkl``: ``weights`` itself or beside it, else where
    :func:`dlscratch.io.find_book_weights` looks for the book's files."""
    from dlscratch.book_weights import DEEP_CONVNET_FILE
    from dlscratch.io import find_book_weights

    return find_book_weights(weights, name=DEEP_CONVNET_FILE)


@experiment(
    "deep-cnn",
    title="DeepConvNet: the book's trained weights and their mistakes",
    section="8.1",
    needs_mnist=True,
    needs_weights=True,
    summary="test accuracy of the book's deep_convnet_params.pkl and the digits it gets wrong; "
    "(full mode) a short training run's curves",
    shows="The test digits the book's trained DeepConvNet misclassifies, with its guess and the "
    "label; many are ambiguous even to people.",
)
def run_deep_cnn(ctx):
    from dlscratch.book_weights import load_book_network

    path = find_deep_weights(ctx.weights)
    net = load_book_network(path, dtype=np.float32)
    _, (x_test, t_test) = ctx.mnist()
    n_test = ctx.pick(300, len(x_test))
    x_test, t_test = x_test[:n_test], np.asarray(t_test[:n_test])
    pred = np.concatenate(
        [net.predict(x_test[i : i + 100]).argmax(axis=1) for i in range(0, n_test, 100)]
    )
    wrong = np.flatnonzero(pred != t_test)
    acc = 1 - len(wrong) / n_test
    ctx.config.update(
        weights=str(path),
        test_samples=n_test,
        dtype="float32",
        dropout="book form (x (1 - ratio) at test time)",
    )
    ctx.summary.update(test_accuracy=acc, misclassified=len(wrong))
    ctx.reference(
        f"test accuracy, book weights ({n_test} images)",
        acc,
        0.9935,
        tol=0.001,
        note="the book's text reports 99.35%; these files give what they give",
    )
    ctx.finding(
        f"The book's weights misclassify {len(wrong)} of {n_test} test images (accuracy "
        f"{acc:.4f}), computed with the book's network definition."
    )
    ctx.write_csv(
        "misclassified",
        ["index", "label", "prediction"],
        [[int(i), int(t_test[i]), int(pred[i])] for i in wrong],
    )
    plt = pyplot()
    shown = wrong[:20]
    cols = 10
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 1.5 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown):
        ax.imshow(x_test[i].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"{int(pred[i])} (label {int(t_test[i])})", fontsize=8, color="tab:red")
    fig.suptitle(f"DeepConvNet (book weights): misclassified test digits, {len(wrong)}/{n_test}")
    fig.tight_layout()
    ctx.save_figure(fig, "deep-cnn-misclassified")

    if ctx.quick:
        return
    # full mode: a short training run from scratch (one epoch; the book trains 20)
    from dlscratch.nets import DeepConvNet
    from dlscratch.optim import Adam

    (x, t), _ = ctx.mnist()
    per_epoch = iterations_per_epoch(len(x), 100)
    fresh = DeepConvNet(rng=ctx.rng("init"))
    log = train_iterations(
        fresh,
        Adam(lr=0.001),
        x,
        t,
        iterations=per_epoch,
        batch_size=100,
        rng=ctx.rng("batches"),
        eval_every=per_epoch // 6,
        eval_sets={"test (1000)": (x_test[:1000], t_test[:1000])},
    )
    ctx.summary["training"] = {
        "iterations": log.eval_iterations,
        "test_accuracy": log.accuracy["test (1000)"],
        "seconds": log.seconds,
    }
    ctx.write_csv(
        "training",
        ["iteration", "test_accuracy"],
        zip(log.eval_iterations, log.accuracy["test (1000)"]),
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(log.eval_iterations, log.accuracy["test (1000)"], "o-")
    ax.set_xlabel("iterations")
    ax.set_ylabel("test accuracy (1000 images)")
    ax.set_title("DeepConvNet, one epoch, Adam lr 0.001")
    fig.tight_layout()
    ctx.save_figure(fig, "deep-cnn-training")
