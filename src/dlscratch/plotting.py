"""Figures of a training run: learning curves, confusion matrix, misclassified digits.

matplotlib is imported inside each function with the Agg backend, so
importing this module costs nothing and works without a display. Each
function returns the figure and, given ``path``, also saves it atomically.
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    if path is not None:
        from dlscratch.fileio import save_figure

        save_figure(fig, path, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig


def plot_history(history, path=None, title: str | None = None):
    """Loss and accuracy per epoch, drawn the way the book draws them.

    Left: the loss of every mini-batch (thin line, on an epoch axis) with the
    per-epoch training and validation loss. Right: training accuracy (solid)
    and validation accuracy (dashed) per epoch on a 0-1 scale, legend at the
    lower right, as in the book's figure of ``train acc`` and ``test acc``.

    Parameters
    ----------
    history : History
    path : str or os.PathLike, optional
        Where to save (PNG, SVG, PDF by suffix).
    title : str, optional
    """
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = history.column("epoch")
    steps = history.column("step")
    if history.losses:
        # place each step on the epoch axis: step s of epoch e sits at e - 1 + s / steps(e)
        xs, start = [], 0
        for epoch, end in zip(epochs, steps):
            n = end - start
            xs.extend(epoch - 1 + (np.arange(1, n + 1) / n))
            start = end
        extra = len(history.losses) - len(xs)  # steps of an unfinished epoch
        if extra > 0:
            xs.extend(len(epochs) + np.arange(1, extra + 1) / max(extra, 1))
        ax_loss.plot(xs, history.losses, lw=0.6, alpha=0.45, color="tab:gray", label="batch loss")
    if epochs:
        ax_loss.plot(epochs, history.train_loss, "o-", label="train loss")
        if any(v is not None for v in history.val_loss):
            ax_loss.plot(epochs, history.val_loss, "s--", label="val loss")
        ax_acc.plot(epochs, history.train_acc, marker="o", label="train acc")
        if any(v is not None for v in history.val_acc):
            ax_acc.plot(epochs, history.val_acc, marker="s", linestyle="--", label="val acc")
        if history.best_epoch is not None:
            ax_acc.axvline(
                history.best_epoch,
                color="tab:green",
                lw=0.8,
                ls=":",
                label=f"kept: epoch {history.best_epoch}",
            )
    ax_loss.set_xlabel("epochs")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    if ax_loss.get_lines():
        ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_xlabel("epochs")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.0)
    ax_acc.grid(alpha=0.3)
    if epochs:
        _accuracy_zoom(ax_acc, epochs, history)
    if ax_acc.get_lines():
        # Lower left: curves that end high leave it empty, and the zoom sits to its right.
        ax_acc.legend(loc="lower left", fontsize=8)
    if epochs:
        row = _kept_row(history)
        parts = [f"train {row['train_acc']:.4f}"]
        if row.get("val_acc") is not None:
            parts.append(f"val {row['val_acc']:.4f}")
        if history.best_epoch is not None and row is not history.last():
            head = f"kept epoch {history.best_epoch} (early stopping): "
        else:
            head = "final accuracy: "
        ax_acc.set_title(head + ", ".join(parts), fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def _kept_row(history) -> dict:
    """The epoch whose weights the network keeps: the best one after early stopping."""
    if history.best_epoch is not None:
        for row in history.epochs:
            if row.get("epoch") == history.best_epoch:
                return row
    return history.last()


def _accuracy_zoom(ax, epochs, history, threshold: float = 0.9):
    """An inset showing the top of the accuracy axis (e.g. 0.95-1.0) where the runs live.

    Added only when every final accuracy is at least ``threshold``; it sits low in the
    panel, where accuracy curves that end high leave the axes empty.
    """
    curves = [("train", history.train_acc, "o-")]
    if any(v is not None for v in history.val_acc):
        curves.append(("val", history.val_acc, "s--"))
    finals = [c[1][-1] for c in curves if c[1] and c[1][-1] is not None]
    if not finals or min(finals) < threshold or len(epochs) < 2:
        return None
    tail = [v for _, ys, _ in curves for v in ys[len(ys) // 2 :] if v is not None]
    lo = max(min(0.95, np.floor(min(tail) * 100) / 100 - 0.01), threshold - 0.1)
    inset = ax.inset_axes([0.38, 0.1, 0.58, 0.42])
    for (_name, ys, style), color in zip(curves, ("tab:blue", "tab:orange")):
        inset.plot(epochs, [np.nan if v is None else v for v in ys], style, ms=3, color=color)
    if history.best_epoch is not None:
        inset.axvline(history.best_epoch, color="tab:green", lw=0.8, ls=":")
    inset.set_ylim(lo, 1.0)
    inset.set_xlabel("epochs", fontsize=7)
    inset.set_ylabel("accuracy", fontsize=7)
    inset.tick_params(labelsize=7)
    inset.set_title(f"zoom {lo:.2f}-1.0", fontsize=7)
    inset.grid(alpha=0.3)
    return inset


def plot_confusion(cm, class_names=None, path=None, title: str | None = None):
    """The confusion matrix as a heat map with counts; rows true, columns predicted.

    Colours are row-normalised (recall per class), so errors stand out in
    every row whatever the class sizes.
    """
    plt = _pyplot()
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(n) for n in (class_names or range(k))]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 0.55 * k + 2.5
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else 0.0
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.4f})")
    fig.tight_layout()
    return _finish(fig, path)


def plot_misclassified(
    images, labels, probs, indices, class_names=None, path=None, cols: int = 8, title=None
):
    """A grid of chosen (typically the most confidently) misclassified images.

    Drawn as one mosaic image with a caption under each tile (one axes, so it
    stays fast for many tiles).

    Parameters
    ----------
    images : ndarray (N, 784) or (N, 28, 28) or (N, 1, 28, 28)
        uint8 or [0, 1] floats.
    labels : ndarray (N,)
        True classes.
    probs : ndarray (N, C)
        Predicted class probabilities.
    indices : sequence of int
        Which samples to show, in order.
    class_names : list of str, optional
    """
    plt = _pyplot()
    indices = [int(i) for i in indices]
    probs = np.asarray(probs)
    names = [str(n) for n in (class_names or range(probs.shape[1]))]
    n = max(len(indices), 1)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    side, gap, caption = 28, 4, 16  # pixels: tile, margin, room for two lines of text
    cell_w, cell_h = side + gap, side + gap + caption
    mosaic = np.full((rows * cell_h, cols * cell_w), 0.35)  # grey frame around the digits
    fig, ax = plt.subplots(figsize=(1.2 * cols, 1.55 * rows + 0.5))
    for slot, i in enumerate(indices):
        r, c = divmod(slot, cols)
        tile = np.asarray(images[i], dtype=np.float64).reshape(side, side)
        if tile.max() > 1:
            tile = tile / 255.0
        y, x = r * cell_h + gap // 2, c * cell_w + gap // 2
        mosaic[y : y + side, x : x + side] = tile  # white on black, as MNIST stores them
        pred = int(np.argmax(probs[i]))
        ax.text(
            x + side / 2,
            y + side + 1,
            f"pred {names[pred]} ({probs[i][pred]:.0%})\ntrue {names[int(labels[i])]}",
            ha="center",
            va="top",
            fontsize=7,
            color="white",
        )
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if not indices:
        ax.text(cell_w / 2, cell_h / 2, "no mistakes", ha="center", va="center")
    ax.set_title(title or "most confident mistakes: predicted (probability) / true", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93)
    return _finish(fig, path)
