"""The report's figures show the numbers they are given (read back from the matplotlib figure
before it is saved), and each is written as a non-blank PNG."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emotionnet import data, plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save (a closed figure keeps its artists for inspection)."""
    figures = []
    save = plots._save

    def keep(figure, path, dpi):
        figures.append(figure)
        save(figure, path, dpi)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _metrics(rng):
    counts = rng.integers(0, 40, (7, 7))
    per_class = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)} for name, p, r, f, s in zip(data.EMOTIONS, rng.random(7), rng.random(7), rng.random(7), counts.sum(axis=1))}
    return {"split": "val", "available": True, "accuracy": 0.5, "macro_f1": 0.4, "confusion_matrix": counts.tolist(), "per_class": per_class}


def _assert_png(path, width, height):
    with Image.open(path) as image:
        assert image.size == (width, height)
        assert np.asarray(image.convert("L")).std() > 5  # not blank


def test_confusion_figure_annotates_the_counts_and_the_row_shares(drawn, tmp_path, rng):
    metrics = _metrics(rng)
    plots.plot_confusion(metrics, tmp_path / "confusion.png", dpi=50)
    counts = np.array(metrics["confusion_matrix"])
    count_axis, share_axis = drawn[0].axes
    assert [text.get_text() for text in count_axis.texts] == [str(value) for value in counts.ravel()]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    assert [text.get_text() for text in share_axis.texts] == [f"{value:.2f}" for value in shares.ravel()]
    assert [label.get_text() for label in count_axis.get_yticklabels()] == list(data.EMOTIONS)
    assert "accuracy 0.500" in count_axis.get_title()
    _assert_png(tmp_path / "confusion.png", 700, 275)


def test_per_class_figure_draws_each_measure(drawn, tmp_path, rng):
    metrics = _metrics(rng)
    plots.plot_per_class(metrics, tmp_path / "per_class.png", dpi=50)
    axis = drawn[0].axes[0]
    heights = [bar.get_height() for bar in axis.patches]
    expected = [metrics["per_class"][name][measure] for measure in ("precision", "recall", "f1") for name in data.EMOTIONS]
    np.testing.assert_allclose(heights, expected)
    assert [label.get_text().split("\n")[0] for label in axis.get_xticklabels()] == list(data.EMOTIONS)
    _assert_png(tmp_path / "per_class.png", 450, 200)


def test_history_figure_draws_both_curves_and_marks_the_best_epoch(drawn, tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "accuracy": [0.3, 0.5, 0.6], "val_accuracy": [0.35, 0.55, 0.5], "loss": [1.8, 1.2, 1.0], "val_loss": [1.7, 1.3, 1.4]})
    plots.plot_history(history, tmp_path / "curves.png", dpi=50)
    accuracy_axis, loss_axis = drawn[0].axes
    lines = {line.get_label(): line for line in accuracy_axis.lines}
    np.testing.assert_allclose(lines["validation"].get_ydata(), [0.35, 0.55, 0.5])
    np.testing.assert_allclose(lines["training"].get_ydata(), [0.3, 0.5, 0.6])
    assert list(lines["best validation epoch"].get_xdata()) == [2, 2]
    np.testing.assert_allclose({line.get_label(): line for line in loss_axis.lines}["validation"].get_ydata(), [1.7, 1.3, 1.4])
    _assert_png(tmp_path / "curves.png", 500, 200)


def test_time_to_accuracy_figure_puts_minutes_on_the_x_axis(drawn, tmp_path):
    histories = {"a": pd.DataFrame({"elapsed_seconds": [60.0, 180.0], "val_accuracy": [0.4, 0.5]}), "b": pd.DataFrame({"elapsed_seconds": [30.0], "val_accuracy": [0.3]})}
    plots.plot_time_to_accuracy(histories, tmp_path / "time.png", dpi=50)
    lines = {line.get_label(): line for line in drawn[0].axes[0].lines}
    np.testing.assert_allclose(lines["a"].get_xdata(), [1.0, 3.0])
    np.testing.assert_allclose(lines["b"].get_ydata(), [0.3])
    _assert_png(tmp_path / "time.png", 400, 225)


def test_a_missing_split_gets_a_figure_that_says_so(drawn, tmp_path):
    metrics = {"split": "test", "available": False, "note": "this dataset has no rows for this split"}
    plots.plot_confusion(metrics, tmp_path / "confusion.png", dpi=50)
    assert "No test split: this dataset has no rows" in drawn[0].axes[0].texts[0].get_text()
    _assert_png(tmp_path / "confusion.png", 300, 100)
