"""Section 3.6: inference with the book's pretrained network, one image at a time and in batches."""

from __future__ import annotations

import time

import numpy as np

from dlscratch.experiments.base import experiment, pyplot
from dlscratch.io import find_book_weights

BOOK_ACCURACY = 0.9352


def _predict_labels(net, x, batch_size):
    """Arg-max predictions for ``x`` in chunks of ``batch_size``; returns (labels, seconds)."""
    out = np.empty(len(x), dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        out[i : i + batch_size] = np.asarray(net.predict(x[i : i + batch_size])).argmax(axis=1)
    return out, time.perf_counter() - t0


#: Our threshold for "many times faster" (the book says batching is faster, without a number).
MANY_TIMES = 5.0


@experiment(
    "inference",
    title="Inference with the pretrained network",
    section="3.6",
    needs_mnist=True,
    needs_weights=True,
    summary="the book's pretrained network (sample_weight.pkl): accuracy 0.9352, single vs "
    "batched throughput",
    shows="The book's pretrained 784-50-100-10 sigmoid network classifies the 10,000 test images "
    "one at a time and in batches of 100 (the book: 93.52% either way, and batches are faster); "
    "the throughput of each batch size is timed the same way, best of 3.",
)
def run_inference(ctx):
    from dlscratch.io import load_book_weights

    path = find_book_weights(ctx.weights)
    net = load_book_weights(path)
    _, (x_test, t_test) = ctx.mnist()
    t_test = np.asarray(t_test)
    # Throughput: every batch size timed the same way, best of `repeats` passes over the
    # same `n_time` images (quick mode times fewer images, never fewer repeats).
    n_time = ctx.pick(1000, len(x_test))
    repeats = 3
    ctx.config.update(
        weights=str(path),
        network=repr(net).replace("\n", " "),
        test_samples=len(x_test),
        dtype=str(net.dtype),
        timed_images=n_time,
        timing=f"best of {repeats} passes for every batch size",
    )

    # Accuracy, one image at a time (the book's first loop) and in batches of 100.
    single, _ = _predict_labels(net, x_test, 1)
    batched, _ = _predict_labels(net, x_test, 100)
    acc_single = float(np.mean(single == t_test))
    acc_batched = float(np.mean(batched == t_test))

    sizes = sorted({1, 10, 100, 1000, n_time})
    x_time = x_test[:n_time]
    rate = {}
    for b in sizes:
        best = min(_predict_labels(net, x_time, b)[1] for _ in range(repeats))
        rate[b] = n_time / best
    speedup = rate[100] / rate[1]
    ctx.summary.update(
        accuracy_single=acc_single,
        accuracy_batched=acc_batched,
        same_predictions=bool(np.array_equal(single, batched)),
        images_per_second={str(b): rate[b] for b in sizes},
        speedup_batch_100_over_1=speedup,
    )
    ctx.reference("accuracy, one image at a time", acc_single, BOOK_ACCURACY)
    ctx.reference("accuracy, batches of 100", acc_batched, BOOK_ACCURACY)
    ctx.reference(
        "speed-up of batch 100 over single images",
        speedup,
        expected=f"many times faster (≥ {MANY_TIMES:g}x)",
        claim="batching makes inference faster (the book gives no number)",
        holds=speedup > 1.0,
        note=f"best of {repeats} for every batch size; depends on the machine and its load",
    )
    ctx.claim(
        "Batch and single-image inference give the same predictions.",
        np.array_equal(single, batched),
    )
    ctx.claim(
        f"Batching makes inference many times faster (batch 100 at least {MANY_TIMES:g}x "
        "single images).",
        speedup >= MANY_TIMES,
        f"measured {rate[1]:,.0f} vs {rate[100]:,.0f} images/s: {speedup:.2f}x",
    )
    ctx.write_csv("throughput", ["batch_size", "images_per_second"], [[b, rate[b]] for b in sizes])
    wrong = np.flatnonzero(batched != t_test)
    ctx.write_csv(
        "predictions",
        ["index", "label", "predicted"],
        [[i, int(t_test[i]), int(batched[i])] for i in range(len(t_test))],
    )

    plt = pyplot()
    fig = plt.figure(figsize=(12, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    ax.loglog(sizes, [rate[b] for b in sizes], "o-")
    ax.set_xlabel("batch size")
    ax.set_ylabel("images per second")
    ax.set_title(f"throughput, best of {repeats} (accuracy {acc_batched:.4f})")
    ax.grid(alpha=0.3, which="both")
    # A few misclassified digits with their predictions.
    for j, i in enumerate(wrong[:8]):
        sub = fig.add_subplot(2, 8, 5 + (j // 4) * 8 + (j % 4))
        sub.imshow(np.asarray(x_test[i]).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        sub.set_title(f"{int(t_test[i])} → {int(batched[i])}", fontsize=8)
        sub.axis("off")
    fig.text(0.72, 0.95, "misclassified: label → predicted", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    ctx.save_figure(fig, "inference")
