"""Evaluation helpers (confusion matrix, precision/recall, confident mistakes) and figures."""

import numpy as np
import pytest

from dlscratch import MultiLayerNet
from dlscratch.plotting import plot_confusion, plot_history, plot_misclassified
from dlscratch.training import (
    ClassReport,
    History,
    confident_mistakes,
    confusion_matrix,
    evaluate,
    format_confusion,
    predict_scores,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    report = ClassReport.from_confusion(cm)
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.precision.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert report.recall.tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert report.f1[2] == pytest.approx(0.8)
    assert report.support.tolist() == [2, 1, 3]
    text = report.format(["a", "b", "c"])
    assert "precision" in text.splitlines()[0] and "accuracy" not in text  # the caller prints it
    assert report.to_dict(["a", "b", "c"])["classes"]["c"]["recall"] == pytest.approx(2 / 3)
    table = format_confusion(cm).splitlines()
    assert table[2].split() == ["0", "1", "1", "0"]


def test_class_without_predictions_has_zero_precision_not_nan():
    report = ClassReport.from_confusion(confusion_matrix([0, 1], [0, 0], num_classes=2))
    assert report.precision.tolist() == [0.5, 0.0]
    assert np.isfinite(report.f1).all()


def test_confident_mistakes_are_sorted_by_the_wrong_class_probability():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 1, 1, 1])
    # wrong: 1 (p=0.8), 2 (0.6), 4 (0.7)
    assert confident_mistakes(probs, labels, k=2).tolist() == [1, 4]
    assert confident_mistakes(probs, labels).tolist() == [1, 4, 2]


def test_evaluate_matches_the_networks_own_loss_and_accuracy():
    rng = np.random.default_rng(0)
    x8 = rng.integers(0, 256, (250, 12), dtype=np.uint8)
    t = rng.integers(0, 4, 250)
    net = MultiLayerNet(12, [10], 4, weight_decay_lambda=0.1, rng=0)
    xf = x8.astype(np.float32) / np.float32(255)
    loss, acc = evaluate(net, x8, t, batch_size=64)  # uneven batches, uint8 scaled
    assert acc == pytest.approx(net.accuracy(xf, t))
    assert loss == pytest.approx(net.loss(xf, t), rel=1e-5)
    # the scores of the same forward passes, as predict_scores gives them
    loss2, acc2, scores = evaluate(net, x8, t, batch_size=64, return_scores=True)
    assert (loss2, acc2) == (loss, acc)
    np.testing.assert_array_equal(scores, predict_scores(net, x8, batch_size=64))
    assert acc == np.mean(scores.argmax(axis=1) == t)


def _history():
    h = History()
    h.losses = list(np.linspace(2.0, 0.2, 30))
    for e in range(1, 4):
        h.record_epoch(
            {
                "epoch": e,
                "step": 10 * e,
                "lr": 0.1,
                "batch_loss": 1.0 / e,
                "train_loss": 0.9 / e,
                "train_acc": 0.7 + 0.1 * e,
                "val_loss": 1.0 / e,
                "val_acc": 0.65 + 0.1 * e,
                "time_s": 0.1,
            }
        )
    h.best_epoch = 3
    return h


def test_figures_are_written_as_png(tmp_path):
    plot_history(_history(), tmp_path / "curves.png", title="t")
    cm = confusion_matrix([0, 1, 2, 2], [0, 1, 2, 1], num_classes=3)
    plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png")
    images = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    probs = np.full((5, 3), 0.2)
    probs[:, 1] = 0.6
    plot_misclassified(images, np.zeros(5, int), probs, [3, 1], ["a", "b", "c"], tmp_path / "m.png")
    plot_misclassified(images, np.zeros(5, int), probs, [], None, tmp_path / "none.png")
    for name in ("curves.png", "cm.png", "m.png", "none.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_history_figure_without_validation_or_epochs():
    h = History()
    fig = plot_history(h)
    assert len(fig.axes) == 2
    h.losses = [1.0, 0.5]  # an unfinished first epoch
    h.record_epoch({"epoch": 1, "step": 1, "train_loss": 0.5, "train_acc": 0.8})
    fig = plot_history(h)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["train acc"]
