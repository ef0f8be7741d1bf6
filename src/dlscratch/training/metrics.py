"""Evaluating a classifier: loss and accuracy in batches, confusion matrix, precision/recall."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlscratch.backend import to_device, to_numpy
from dlscratch.data.batching import to_float


def as_input_batch(xb, dtype, device: str = "cpu"):
    """A batch ready for a network: uint8 pixels become floats in [0, 1] of ``dtype``.

    Float arrays are cast to ``dtype`` (not rescaled). ``device='cuda'`` copies to the GPU.
    """
    xb = to_float(xb, dtype)
    return xb if device == "cpu" else to_device(xb, device)


def class_labels(t) -> np.ndarray:
    """Integer labels (N,) from integer (N,) or one-hot (N, C) targets."""
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


def predict_scores(network, x, batch_size: int = 1000) -> np.ndarray:
    """Scores (N, C) of ``network`` on ``x`` (N, D), computed ``batch_size`` rows at a time."""
    dtype = np.dtype(network.dtype)
    device = getattr(network, "device", "cpu")
    out = [
        to_numpy(network.predict(as_input_batch(x[s : s + batch_size], dtype, device)))
        for s in range(0, len(x), batch_size)
    ]
    return np.concatenate(out) if out else np.empty((0, 0), dtype)


def evaluate(network, x, t, batch_size: int = 1000, *, return_scores: bool = False):
    """Mean loss (with the weight-decay penalty, as ``network.loss``) and accuracy, in batches.

    Parameters
    ----------
    network : Network
    x : ndarray (N, D)
        uint8 pixels (scaled by 1/255 batch by batch) or floats.
    t : ndarray (N,) integer labels or (N, C) one-hot
    batch_size : int
        Rows per forward pass (bounds memory).
    return_scores : bool
        Also return the scores (N, C) as a NumPy array - what :func:`predict_scores`
        gives - from the same forward passes.

    Returns
    -------
    (loss, accuracy) : tuple of float
        ``(loss, accuracy, scores)`` with ``return_scores=True``.
    """
    n = len(x)
    if n == 0:
        raise ValueError("cannot evaluate on an empty set")
    if len(t) != n:
        raise ValueError(f"x has {n} samples but t has {len(t)} labels")
    dtype = np.dtype(network.dtype)
    device = getattr(network, "device", "cpu")
    labels = class_labels(t)
    total_loss = 0.0
    correct = 0
    kept = []
    # A loss layer of our own, so that the network's (what backward reads) stays untouched.
    loss_layer = type(network.last_layer)()
    for s in range(0, n, batch_size):
        xb = as_input_batch(x[s : s + batch_size], dtype, device)
        tb = labels[s : s + batch_size]
        if device != "cpu":
            tb = to_device(tb, device)
        scores = network.predict(xb)
        total_loss += loss_layer.forward(scores, tb) * len(tb)
        correct += int((scores.argmax(axis=1) == tb).sum())
        if return_scores:
            kept.append(to_numpy(scores))
    loss, accuracy = total_loss / n + network.weight_decay_loss(), correct / n
    return (loss, accuracy, np.concatenate(kept)) if return_scores else (loss, accuracy)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``; shape (K, K)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    k = num_classes or int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


@dataclass
class ClassReport:
    """Per-class precision, recall, F1 and support from a confusion matrix."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    accuracy: float

    @classmethod
    def from_confusion(cls, cm: np.ndarray) -> ClassReport:
        cm = np.asarray(cm, dtype=np.float64)
        tp = np.diag(cm)
        predicted = cm.sum(axis=0)
        support = cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            recall = np.where(support > 0, tp / support, 0.0)
            denom = precision + recall
            f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
        total = cm.sum()
        return cls(precision, recall, f1, support.astype(np.int64), float(tp.sum() / total))

    def to_dict(self, class_names=None) -> dict:
        names = class_names or [str(i) for i in range(len(self.support))]
        return {
            "accuracy": self.accuracy,
            "classes": {
                str(name): {
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, name in enumerate(names)
            },
        }

    def format(self, class_names=None) -> str:
        """A text table: one row per class, then the macro averages (the accuracy is
        :attr:`accuracy`; ``dlscratch evaluate`` prints it once, above the table)."""
        names = [str(n) for n in (class_names or range(len(self.support)))]
        width = max(5, *(len(n) for n in names))
        lines = [f"{'class':<{width}}  precision  recall     f1  support"]
        for i, name in enumerate(names):
            lines.append(
                f"{name:<{width}}  {self.precision[i]:9.4f}  {self.recall[i]:6.4f}  "
                f"{self.f1[i]:.4f}  {self.support[i]:7d}"
            )
        lines.append(
            f"{'macro':<{width}}  {self.precision.mean():9.4f}  {self.recall.mean():6.4f}  "
            f"{self.f1.mean():.4f}  {self.support.sum():7d}"
        )
        return "\n".join(lines)


def format_confusion(cm: np.ndarray, class_names=None) -> str:
    """The confusion matrix as text: rows are true classes, columns predictions."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(n) for n in (class_names or range(k))]
    short = [n[:6] for n in names]
    cell = max(5, len(str(int(cm.max(initial=0)))) + 1, *(len(s) + 1 for s in short))
    label_w = max(len(n) for n in short)
    header = " " * (label_w + 1) + "".join(f"{s:>{cell}}" for s in short)
    lines = ["true \\ predicted", header]
    for i in range(k):
        lines.append(f"{short[i]:>{label_w}} " + "".join(f"{int(v):>{cell}}" for v in cm[i]))
    return "\n".join(lines)


def confident_mistakes(probs, labels, k: int = 25) -> np.ndarray:
    """Indices of the ``k`` misclassified samples with the highest predicted probability.

    Parameters
    ----------
    probs : ndarray (N, C)
        Class probabilities.
    labels : ndarray (N,)
        True classes.
    k : int
        How many to return at most.

    Returns
    -------
    ndarray of int
        Most confident first (ties broken by index).
    """
    probs = np.asarray(probs)
    labels = class_labels(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    confidence = probs[wrong, pred[wrong]]
    order = np.lexsort((wrong, -confidence))
    return wrong[order[:k]]
