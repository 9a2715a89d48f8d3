"""Figures of the report. Each function writes one PNG and returns nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from emotionnet import data  # noqa: E402


def _save(figure, path, dpi):
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)


def _message_figure(path, text, dpi):
    figure, axis = plt.subplots(figsize=(6, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    _save(figure, path, dpi)


def plot_history(history, path, dpi=110):
    """Training and validation accuracy and loss per epoch."""
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for column, label in (("accuracy", "training"), ("val_accuracy", "validation")):
        accuracy_axis.plot(history["epoch"], history[column], marker=".", label=label)
    for column, label in (("loss", "training"), ("val_loss", "validation")):
        loss_axis.plot(history["epoch"], history[column], marker=".", label=label)
    best = history["val_accuracy"].idxmax()
    accuracy_axis.axvline(history["epoch"][best], color="grey", linestyle=":", label="best validation epoch")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axis.legend()
    loss_axis.legend()
    _save(figure, path, dpi)


def plot_confusion(metrics, path, dpi=110):
    """Confusion matrix as counts and row-normalised (recall per true class)."""
    if not metrics.get("available", True):
        return _message_figure(path, f"No {metrics['split']} split: {metrics['note']}", dpi)
    counts = np.array(metrics["confusion_matrix"])
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for axis, values, fmt, title in ((axes[0], counts, "d", "counts"), (axes[1], normalised, ".2f", "row-normalised")):
        sns.heatmap(values, annot=True, fmt=fmt, cmap="Blues", square=True, cbar=False, xticklabels=data.EMOTIONS, yticklabels=data.EMOTIONS, ax=axis)
        axis.set(xlabel="predicted", ylabel="true", title=f"{metrics['split']}: {title} (accuracy {metrics['accuracy']:.3f})")
    _save(figure, path, dpi)


def plot_per_class(metrics, path, dpi=110):
    """Precision, recall and F1 per class as grouped bars."""
    if not metrics.get("available", True):
        return _message_figure(path, f"No {metrics['split']} split: {metrics['note']}", dpi)
    figure, axis = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(data.EMOTIONS))
    for offset, measure in zip((-0.27, 0, 0.27), ("precision", "recall", "f1")):
        values = [metrics["per_class"][name][measure] for name in data.EMOTIONS]
        axis.bar(positions + offset, values, width=0.27, label=measure)
    axis.set_xticks(positions, [f"{name}\n(n={metrics['per_class'][name]['support']})" for name in data.EMOTIONS])
    axis.set(ylim=(0, 1), ylabel="score", title=f"{metrics['split']}: per-class metrics (macro-F1 {metrics['macro_f1']:.3f})")
    axis.legend()
    _save(figure, path, dpi)


def plot_examples(images, predictions, path, count=36, seed=0, dpi=110):
    """A grid of faces with true and predicted labels; errors titled in red."""
    if len(images) == 0:
        return _message_figure(path, "No images in this split.", dpi)
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False))
    columns = 6
    rows = int(np.ceil(len(chosen) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.7, rows * 1.9), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), chosen):
        row = predictions.iloc[index]
        correct = row["true"] == row["predicted"]
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axis.set_title(f"true {row['true_emotion']}\npred {row['predicted_emotion']}", fontsize=8, color="black" if correct else "red")
    _save(figure, path, dpi)


def plot_class_distribution(audit, path, dpi=110):
    """Images per class and split, from the data audit."""
    figure, axis = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(data.EMOTIONS))
    splits = [split for split in data.SPLITS if audit["splits"][split]["rows"]]
    width = 0.8 / max(len(splits), 1)
    for index, split in enumerate(splits):
        counts = [audit["splits"][split]["per_class"][name] for name in data.EMOTIONS]
        axis.bar(positions + (index - (len(splits) - 1) / 2) * width, counts, width=width, label=f"{split} ({audit['splits'][split]['rows']})")
    axis.set_xticks(positions, data.EMOTIONS)
    axis.set(ylabel="images", title="Class distribution per split")
    axis.legend()
    _save(figure, path, dpi)


def plot_time_to_accuracy(histories: dict, path, dpi=110):
    """Validation accuracy against cumulative training time, one line per model."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, history in histories.items():
        axis.plot(history["elapsed_seconds"] / 60, history["val_accuracy"], marker=".", label=name)
    axis.set(xlabel="training time (minutes)", ylabel="validation accuracy", title="Time to accuracy")
    axis.grid(alpha=0.3)
    axis.legend()
    _save(figure, path, dpi)
