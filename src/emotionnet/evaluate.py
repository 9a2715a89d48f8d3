"""Evaluation: class probabilities (optionally with test-time augmentation, optionally averaged
over an ensemble of models) and the metrics computed from them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from emotionnet import data


def shifted_crops(images, shift: int) -> list:
    """Five views of uint8 images (n, 48, 48): the image and four copies shifted diagonally by
    ``shift`` pixels (edge-padded, then cropped back to 48x48), like 5-crop evaluation."""
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)), mode="edge")
    side = images.shape[1]
    offsets = [(shift, shift), (0, 0), (0, 2 * shift), (2 * shift, 0), (2 * shift, 2 * shift)]
    return [padded[:, top : top + side, left : left + side] for top, left in offsets]


def tta_views(images, tta: bool, crop_shift: int = 0) -> list:
    """The views whose probabilities are averaged: the image; with ``tta`` also its mirror; with
    ``crop_shift`` > 0 five shifted crops of each."""
    views = shifted_crops(images, crop_shift) if crop_shift else [images]
    return views + [view[:, :, ::-1] for view in views] if tta else views


def predict_probabilities(model, images, batch_size: int = 512, tta: bool = False, crop_shift: int = 0):
    """Softmax outputs (n, 7) for uint8 images (n, 48, 48); with ``tta`` the mean over the image
    and its mirror, with ``crop_shift`` also over shifted crops (see ``tta_views``)."""
    if len(images) == 0:
        return np.empty((0, len(data.EMOTIONS)), np.float32)
    probabilities = np.zeros((len(images), len(data.EMOTIONS)), np.float64)
    views = tta_views(images, tta, crop_shift)
    for view in views:
        for start in range(0, len(view), batch_size):
            batch = view[start : start + batch_size, :, :, None].astype(np.float32) / 255.0
            probabilities[start : start + batch_size] += np.asarray(model(batch, training=False))
    return (probabilities / len(views)).astype(np.float32)


def ensemble_probabilities(models, images, batch_size: int = 512, tta: bool = False, crop_shift: int = 0):
    """The mean of the members' probabilities."""
    return np.mean([predict_probabilities(model, images, batch_size, tta, crop_shift) for model in models], axis=0)


def _f1(precision, recall):
    return np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=(precision + recall) > 0)


def classification_metrics(labels, probabilities) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix (rows = true
    class), top-2 accuracy and log loss."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(data.EMOTIONS)
    predicted = probabilities.argmax(axis=1)
    confusion = np.bincount(labels * n_classes + predicted, minlength=n_classes**2).reshape(n_classes, n_classes)
    true_positives = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    precision = np.divide(true_positives, predicted_counts, out=np.zeros(n_classes), where=predicted_counts > 0)
    recall = np.divide(true_positives, support, out=np.zeros(n_classes), where=support > 0)
    f1 = _f1(precision, recall)
    top2 = np.argsort(probabilities, axis=1)[:, -2:]
    clipped = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    present = support > 0
    return {
        "n": int(len(labels)),
        "accuracy": float(true_positives.sum() / len(labels)),
        "macro_f1": float(f1[present].mean()),
        "top2_accuracy": float((top2 == labels[:, None]).any(axis=1).mean()),
        "log_loss": float(-np.log(clipped).mean()),
        "per_class": {
            name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]), "support": int(support[k])}
            for k, name in enumerate(data.EMOTIONS)
        },
        "confusion_matrix": confusion.tolist(),
    }


def predictions_table(labels, probabilities) -> pd.DataFrame:
    """One row per image: true and predicted label ids and names, and the 7 probabilities."""
    table = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in data.EMOTIONS])
    names = np.array(data.EMOTIONS)
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.empty(0, int)
    table.insert(0, "true", np.asarray(labels, dtype=np.int64))
    table.insert(1, "predicted", predicted)
    table.insert(2, "true_emotion", names[table["true"]])
    table.insert(3, "predicted_emotion", names[predicted])
    return table


def evaluate(models, images, labels, *, split: str, tta: bool, crop_shift: int = 0, batch_size: int = 512):
    """(metrics dict, predictions table) of one model or an ensemble on one split, plus metrics
    with mirror TTA (``tta``) and with the 10 views of ``tta_views`` (``crop_shift`` > 0). An empty
    split gives metrics that say so, and an empty table."""
    header = {"split": split, "members": [getattr(model, "name", "model") for model in models]}
    if len(labels) == 0:
        note = "this dataset has no rows for this split (for test: the CSV holds no PrivateTest rows)"
        return {**header, "n": 0, "available": False, "note": note}, predictions_table(labels, np.empty((0, len(data.EMOTIONS)), np.float32))
    probabilities = ensemble_probabilities(models, images, batch_size)
    metrics = {**header, "available": True, **classification_metrics(labels, probabilities)}
    if tta:
        metrics["tta"] = classification_metrics(labels, ensemble_probabilities(models, images, batch_size, tta=True))
    if crop_shift:
        metrics["tta_crops"] = classification_metrics(labels, ensemble_probabilities(models, images, batch_size, tta=True, crop_shift=crop_shift))
        metrics["tta_crops"]["views"] = 10
    return metrics, predictions_table(labels, probabilities)


def write_results(metrics: dict, predictions: pd.DataFrame, metrics_path, predictions_path):
    """Write the metrics (JSON) and the predictions table (parquet), each under a temporary name
    first and then renamed into place, the metrics last; a failed write leaves neither."""
    with data.atomic_outputs({"predictions": predictions_path, "metrics": metrics_path}) as partial:
        predictions.to_parquet(partial["predictions"], index=False)
        partial["metrics"].write_text(json.dumps(metrics, indent=2))
