"""Section 6.3: batch normalization makes training fast and indifferent to the initial scale."""

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


@experiment(
    "batchnorm",
    title="Batch normalization across weight scales",
    section="6.3.2",
    needs_mnist=True,
    summary="with vs without batch norm across 16 weight scales (1000 samples, 5x100 ReLU, "
    "SGD 0.01, 20 epochs)",
    shows="Training accuracy per epoch with and without batch norm for 16 initial weight scales "
    "from 1 to 1e-4; the book's lesson: with batch norm the network learns faster at almost "
    "every scale, even where the plain network does not learn at all.",
)
def run_batchnorm(ctx):
    (x_train, t_train), _ = ctx.mnist()
    n_train, batch_size, lr = 1000, 100, 0.01
    epochs = ctx.pick(10, 20)
    scales = np.logspace(0, -4, num=ctx.pick(8, 16))
    hidden = [100] * 5
    x_train, t_train = x_train[:n_train], t_train[:n_train]
    per_epoch = iterations_per_epoch(n_train, batch_size)
    ctx.config.update(
        train_samples=n_train,
        batch_size=batch_size,
        optimizer=f"SGD(lr={lr})",
        epochs=epochs,
        iterations=epochs * per_epoch,
        hidden=hidden,
        activation="relu",
        weight_scales=scales.tolist(),
        evaluated_on="the training samples, as in the book",
        note="both networks start from the same weights and see the same batches",
    )
    curves, rows = {}, []
    for k, w in enumerate(scales):
        for bn in (True, False):
            net = MultiLayerNet(
                784, hidden, 10, weight_init_std=float(w), use_batchnorm=bn, rng=ctx.rng("init", k)
            )
            log = train_iterations(
                net,
                SGD(lr=lr),
                x_train,
                t_train,
                iterations=epochs * per_epoch,
                batch_size=batch_size,
                rng=ctx.rng("batches", k),
                eval_every=per_epoch,
                eval_sets={"train": (x_train, t_train)},
                record_loss=False,
            )
            curves[k, bn] = log.accuracy["train"]
            rows += [[float(w), bn, e, a] for e, a in enumerate(log.accuracy["train"])]
        ctx.log(
            f"w={w:.3g}: final train acc with BN {curves[k, True][-1]:.3f}, "
            f"without {curves[k, False][-1]:.3f}"
        )
    final_bn = [curves[k, True][-1] for k in range(len(scales))]
    final_plain = [curves[k, False][-1] for k in range(len(scales))]
    better = int(sum(b > p for b, p in zip(final_bn, final_plain)))
    ctx.summary.update(
        weight_scales=scales.tolist(),
        final_train_acc_bn=final_bn,
        final_train_acc_plain=final_plain,
        bn_higher_count=better,
        scales_count=len(scales),
        mean_final_bn=float(np.mean(final_bn)),
        mean_final_plain=float(np.mean(final_plain)),
    )
    small = [p for w, p in zip(scales, final_plain) if w <= 1e-3]
    almost_all = better >= 0.75 * len(scales)
    ctx.reference(
        "scales where batch norm ends higher",
        f"{better} of {len(scales)}",
        expected="almost all (≥ 3/4)",
        claim="batch norm learns faster at almost every scale",
        holds=almost_all,
    )
    ctx.reference(
        "mean final train accuracy, with BN minus without",
        float(np.mean(final_bn)) - float(np.mean(final_plain)),
        expected="clearly positive (≥ 0.2)",
        claim="batch norm learns faster",
        holds=float(np.mean(final_bn)) - float(np.mean(final_plain)) >= 0.2,
    )
    ctx.reference(
        "without BN: best final train accuracy at scales ≤ 1e-3",
        max(small) if small else float("nan"),
        expected="≈ 0.1 … 0.2: does not learn",
        claim="without batch norm, tiny scales do not learn",
        holds=bool(small) and max(small) < 0.3,
    )
    ctx.claim(
        "Batch norm ends with the higher training accuracy at almost every weight scale.",
        almost_all,
        f"{better} of {len(scales)}",
    )
    ctx.write_csv("accuracy", ["weight_scale", "batchnorm", "epoch", "train_acc"], rows)

    plt = pyplot()
    ncols = 4
    nrows = int(np.ceil(len(scales) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.6 * nrows), sharex=True, sharey=True)
    for k, (ax, w) in enumerate(zip(axes.ravel(), scales)):
        e = np.arange(len(curves[k, True]))
        ax.plot(e, curves[k, True], label="Batch Normalization", markevery=2)
        ax.plot(e, curves[k, False], "--", label="Normal (without BatchNorm)", markevery=2)
        ax.set_title(
            f"W: {w:.3g} (BN {curves[k, True][-1]:.2f}, plain {curves[k, False][-1]:.2f})",
            fontsize=8,
        )
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("train accuracy")
        ax.set_xlabel("epochs")
    for ax in axes.ravel()[len(scales) :]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)  # outside the panels
    fig.suptitle("training accuracy, with (solid) and without (dashed) batch normalization")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    ctx.save_figure(fig, "batchnorm")
