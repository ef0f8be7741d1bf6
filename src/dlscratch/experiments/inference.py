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


@experiment(
    "inference",
    title="Inference with the pretrained network",
    section="3.6",
    needs_mnist=True,
    needs_weights=True,
    summary="the book's pretrained network (sample_weight.pkl): accuracy 0.9352, single vs "
    "batched throughput",
    shows="The book's pretrained 784-50-100-10 sigmoid network classifies 93.52% of the test "
    "images correctly, image by image or in batches alike, and batching makes inference many "
    "times faster.",
)
def run_inference(ctx):
    from dlscratch.io import load_book_weights

    path = find_book_weights(ctx.weights)
    net = load_book_weights(path)
    _, (x_test, t_test) = ctx.mnist()
    t_test = np.asarray(t_test)
    ctx.config.update(
        weights=str(path),
        network=repr(net).replace("\n", " "),
        test_samples=len(x_test),
        dtype=str(net.dtype),
    )

    # Accuracy, one image at a time (the book's first loop) and in batches of 100.
    single, single_s = _predict_labels(net, x_test, 1)
    batched, batched_s = _predict_labels(net, x_test, 100)
    acc_single = float(np.mean(single == t_test))
    acc_batched = float(np.mean(batched == t_test))

    # Throughput over batch sizes; batch size 1 is timed above on the whole test set.
    sizes = [1, 10, 100, 1000, len(x_test)]
    rate = {1: len(x_test) / single_s, 100: len(x_test) / batched_s}
    repeats = ctx.pick(1, 3)
    for b in sizes:
        if b in rate:
            continue
        best = min(_predict_labels(net, x_test, b)[1] for _ in range(repeats))
        rate[b] = len(x_test) / best
    ctx.summary.update(
        accuracy_single=acc_single,
        accuracy_batched=acc_batched,
        same_predictions=bool(np.array_equal(single, batched)),
        images_per_second={str(b): rate[b] for b in sizes},
        speedup_batch_100_over_1=rate[100] / rate[1],
    )
    ctx.compare("accuracy, one image at a time", acc_single, BOOK_ACCURACY)
    ctx.compare("accuracy, batches of 100", acc_batched, BOOK_ACCURACY)
    ctx.compare(
        "speed-up of batch 100 over single images", rate[100] / rate[1], "batching is faster"
    )
    ctx.finding(
        f"{rate[1]:,.0f} images/s one at a time vs {rate[100]:,.0f} images/s in batches "
        f"of 100 ({rate[100] / rate[1]:.0f}x)."
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
    ax.set_title(f"throughput (accuracy {acc_batched:.4f})")
    ax.grid(alpha=0.3, which="both")
    # A few misclassified digits with their predictions.
    for j, i in enumerate(wrong[:8]):
        sub = fig.add_subplot(2, 8, 5 + (j // 4) * 8 + (j % 4))
        sub.imshow(np.asarray(x_test[i]).reshape(28, 28), cmap="gray_r")
        sub.set_title(f"{int(t_test[i])} → {int(batched[i])}", fontsize=8)
        sub.axis("off")
    fig.text(0.72, 0.95, "misclassified: label → predicted", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    ctx.save_figure(fig, "inference")
