"""Text parts of the report: the per-model summary and the table of all models of a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def read_json(path):
    return json.loads(Path(path).read_text())


# metrics keys of the test-time augmentation results and how summaries and the CLI name them
TTA_NAMES = {"tta": "mirror TTA", "tta_crops": "10-view TTA"}


def _metric_line(metrics):
    if not metrics.get("available", True):
        return f"- **{metrics['split']}**: not available: {metrics['note']}"
    line = f"- **{metrics['split']}** ({metrics['n']} images): accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, top-2 accuracy {metrics['top2_accuracy']:.4f}, log loss {metrics['log_loss']:.4f}"
    for key, name in TTA_NAMES.items():
        if key in metrics:
            line += f"; with {name}: accuracy {metrics[key]['accuracy']:.4f}, macro-F1 {metrics[key]['macro_f1']:.4f}"
    return line


def model_summary(name, info, history, val_metrics, test_metrics) -> str:
    """Markdown summary of one trained model."""
    best = history.loc[history["val_accuracy"].idxmax()]
    lines = [
        f"# {name}",
        "",
        f"- architecture `{info['architecture']}`: {info['params']:,} parameters, {info['macs']:,} multiply-adds per image",
        f"- trained {len(history)} epochs in {history['elapsed_seconds'].iloc[-1] / 60:.1f} min ({history['epoch_seconds'].median():.1f} s per epoch, median)",
        f"- weights kept from epoch {int(best['epoch'])} (best validation accuracy {best['val_accuracy']:.4f}); the test split played no part in that choice",
        "",
        "## Metrics",
        _metric_line(val_metrics),
        _metric_line(test_metrics),
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for emotion, scores in val_metrics.get("per_class", {}).items():
        lines.append(f"| {emotion} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1']:.3f} | {scores['support']} |")
    if val_metrics.get("per_class"):
        lines.append("\n(per-class metrics on the validation split)")
    return "\n".join(lines) + "\n"


def _row(name, kind, val_metrics, test_metrics, info=None, history=None):
    row = {"name": name, "kind": kind}
    if info is not None:
        row.update(params=info["params"], macs=info["macs"], epochs=len(history), seconds_per_epoch=round(history["epoch_seconds"].median(), 1), train_minutes=round(history["elapsed_seconds"].iloc[-1] / 60, 1))
    for split, metrics in (("val", val_metrics), ("test", test_metrics)):
        if metrics.get("available", True):
            row[f"{split}_accuracy"] = round(metrics["accuracy"], 4)
            row[f"{split}_macro_f1"] = round(metrics["macro_f1"], 4)
            if "tta" in metrics:
                row[f"{split}_accuracy_tta"] = round(metrics["tta"]["accuracy"], 4)
                row[f"{split}_macro_f1_tta"] = round(metrics["tta"]["macro_f1"], 4)
            if "tta_crops" in metrics:
                row[f"{split}_accuracy_tta10"] = round(metrics["tta_crops"]["accuracy"], 4)
                row[f"{split}_macro_f1_tta10"] = round(metrics["tta_crops"]["macro_f1"], 4)
    return row


def load_runs(files: dict) -> tuple[dict, dict]:
    """Read the dataset report's inputs, keyed ``model/<name>/<part>`` (parts info, history, val,
    test) and ``ensemble/<name>/<part>`` (val, test), into ``models_table``'s two arguments."""
    parts = {"model": {}, "ensemble": {}}
    for key, path in files.items():
        kind, name, part = key.split("/")
        parts[kind].setdefault(name, {})[part] = path
    model_runs = {
        name: (read_json(paths["info"]), pd.read_csv(paths["history"]), read_json(paths["val"]), read_json(paths["test"]))
        for name, paths in parts["model"].items()
    }
    ensemble_runs = {name: (read_json(paths["val"]), read_json(paths["test"])) for name, paths in parts["ensemble"].items()}
    return model_runs, ensemble_runs


def models_table(model_runs: dict, ensemble_runs: dict) -> pd.DataFrame:
    """One row per model and ensemble. ``model_runs[name] = (info, history, val, test)``,
    ``ensemble_runs[name] = (val, test)``."""
    rows = [_row(name, "model", val, test, info, history) for name, (info, history, val, test) in model_runs.items()]
    rows += [_row(name, "ensemble", val, test) for name, (val, test) in ensemble_runs.items()]
    return pd.DataFrame(rows)
