"""Section 6.5: random search for the learning rate and weight decay, judged on validation data."""

from __future__ import annotations

import numpy as np

from dlscratch.data import train_val_split
from dlscratch.experiments.base import (
    experiment,
    iterations_per_epoch,
    pyplot,
    train_iterations,
)
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import SGD

#: log10 bounds of the book's search space.
LR_LOG10 = (-6.0, -2.0)
WEIGHT_DECAY_LOG10 = (-8.0, -4.0)


def log_uniform(rng, low_exp, high_exp, size=None):
    """``10 ** U(low_exp, high_exp)``: uniform on a log scale, as the book samples.

    Every decade is equally likely; one float (``size=None``) or an array of shape ``size``.
    (``dlscratch search --sampler random`` draws the same way, through Optuna.)
    """
    if not low_exp < high_exp:
        raise ValueError(f"need low_exp < high_exp, got {low_exp} and {high_exp}")
    exponent = rng.uniform(low_exp, high_exp, size)
    value = np.clip(10.0**exponent, 10.0**low_exp, 10.0**high_exp)
    return float(value) if size is None else value


def sample_trials(rng, n):
    """``n`` random (lr, weight_decay) pairs from the book's ranges; two arrays of shape (n,)."""
    weight_decay = log_uniform(rng, *WEIGHT_DECAY_LOG10, size=n)
    lr = log_uniform(rng, *LR_LOG10, size=n)
    return lr, weight_decay


@experiment(
    "hyperparameter-search",
    title="Random hyperparameter search",
    section="6.5",
    needs_mnist=True,
    summary="random search, lr 10^U(-6,-2), weight decay 10^U(-8,-4), validation split, ranked "
    "results, best-20 curves",
    shows="Random search on log scales, scored on a validation split carved from the training "
    "data (the test set is never touched): only learning rates around 1e-3 to 1e-2 learn within "
    "50 epochs, while weight decay in this range matters little.",
)
def run_hyperparameter_search(ctx):
    # The test split is discarded unread: hyperparameters are chosen on validation data only.
    (x_all, t_all), _ = ctx.mnist()
    n_samples = 500
    trials = ctx.pick(8, 100)
    epochs = ctx.pick(8, 50)
    batch_size = 100
    val_fraction = 0.2
    (x_train, t_train), (x_val, t_val) = train_val_split(
        x_all[:n_samples], t_all[:n_samples], val_fraction=val_fraction, rng=ctx.rng("split")
    )
    per_epoch = iterations_per_epoch(len(x_train), batch_size)
    ctx.config.update(
        samples=n_samples,
        train_samples=len(x_train),
        validation_samples=len(x_val),
        validation_fraction=val_fraction,
        trials=trials,
        epochs=epochs,
        batch_size=batch_size,
        iterations=epochs * per_epoch,
        hidden=[100] * 6,
        activation="relu",
        lr_log10=list(LR_LOG10),
        weight_decay_log10=list(WEIGHT_DECAY_LOG10),
        test_set="not used",
    )
    lrs, wds = sample_trials(ctx.rng("search"), trials)
    results = []
    for k, (lr, wd) in enumerate(zip(lrs, wds)):
        net = MultiLayerNet(
            784, [100] * 6, 10, weight_decay_lambda=float(wd), rng=ctx.rng("init", k)
        )
        log = train_iterations(
            net,
            SGD(lr=float(lr)),
            x_train,
            t_train,
            iterations=epochs * per_epoch,
            batch_size=batch_size,
            rng=ctx.rng("batches", k),
            eval_every=per_epoch,
            eval_sets={"train": (x_train, t_train), "val": (x_val, t_val)},
            record_loss=False,
        )
        results.append(
            {
                "trial": k,
                "lr": float(lr),
                "weight_decay": float(wd),
                "val_acc": log.final("val"),
                "train_acc": log.final("train"),
                "val_curve": log.accuracy["val"],
                "train_curve": log.accuracy["train"],
            }
        )
        if (k + 1) % 10 == 0:
            ctx.log(f"{k + 1}/{trials} trials")
    # Rank by final validation accuracy (ties: the earlier trial first).
    ranked = sorted(results, key=lambda r: (-r["val_acc"], r["trial"]))
    for rank, r in enumerate(ranked, start=1):
        r["rank"] = rank
    ctx.write_csv(
        "results",
        ["rank", "trial", "lr", "weight_decay", "val_acc", "train_acc"],
        [
            [r["rank"], r["trial"], r["lr"], r["weight_decay"], r["val_acc"], r["train_acc"]]
            for r in ranked
        ],
    )
    ctx.write_csv(
        "curves",
        ["trial", "epoch", "train_acc", "val_acc"],
        [
            [r["trial"], e, a, b]
            for r in results
            for e, (a, b) in enumerate(zip(r["train_curve"], r["val_curve"]))
        ],
    )

    best = ranked[0]
    top = ranked[: min(5, len(ranked))]
    good = [r for r in ranked if r["val_acc"] >= 0.5]
    ctx.summary.update(
        best={k: best[k] for k in ("trial", "lr", "weight_decay", "val_acc", "train_acc")},
        top5=[{k: r[k] for k in ("trial", "lr", "weight_decay", "val_acc")} for r in top],
        trials_with_val_acc_over_half=len(good),
        lr_range_of_those=[min(r["lr"] for r in good), max(r["lr"] for r in good)]
        if good
        else None,
        sampled_lr_range=[float(lrs.min()), float(lrs.max())],
        sampled_weight_decay_range=[float(wds.min()), float(wds.max())],
    )
    ctx.compare("best validation accuracy", best["val_acc"], "≈ 0.8 (book's best 0.83)")
    ctx.compare("best lr", best["lr"], "≈ 0.001 … 0.01")
    ctx.compare("best weight decay", best["weight_decay"], "1e-8 … 1e-6 (weak effect)")
    if good:
        ctx.finding(
            f"{len(good)} of {trials} trials reach validation accuracy ≥ 0.5, all with "
            f"lr between {min(r['lr'] for r in good):.2g} and "
            f"{max(r['lr'] for r in good):.2g}."
        )
    ctx.finding(
        f"Best: val acc {best['val_acc']:.3f} at lr {best['lr']:.3g}, "
        f"weight decay {best['weight_decay']:.3g}."
    )

    plt = pyplot()
    show = ranked[:20]
    ncols = 5
    nrows = max(1, int(np.ceil(len(show) / ncols)))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(13, 2.3 * nrows + 0.6), squeeze=False, sharex=True, sharey=True
    )
    for ax, r in zip(axes.ravel(), show):
        e = np.arange(len(r["val_curve"]))
        ax.plot(e, r["val_curve"], label="val")
        ax.plot(e, r["train_curve"], "--", label="train")
        ax.set_title(
            f"Best-{r['rank']}: val {r['val_acc']:.2f}\nlr {r['lr']:.2g}, "
            f"wd {r['weight_decay']:.2g}",
            fontsize=8,
        )
        ax.set_ylim(0.0, 1.0)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(show) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"best {len(show)} of {trials} trials: validation (solid) and training (dashed) "
        "accuracy per epoch"
    )
    fig.tight_layout()
    ctx.save_figure(fig, "hyperparameter-search")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    sc = ax.scatter(
        [r["lr"] for r in results],
        [r["weight_decay"] for r in results],
        c=[r["val_acc"] for r in results],
        cmap="viridis",
        vmin=0,
        vmax=1,
        edgecolors="k",
        linewidths=0.3,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(10 ** LR_LOG10[0], 10 ** LR_LOG10[1])
    ax.set_ylim(10 ** WEIGHT_DECAY_LOG10[0], 10 ** WEIGHT_DECAY_LOG10[1])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weight decay λ")
    fig.colorbar(sc, label="validation accuracy")
    ax.set_title("search space (log scales)")
    fig.tight_layout()
    ctx.save_figure(fig, "hyperparameter-space")
