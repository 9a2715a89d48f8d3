"""The report's table of all models (sizes, timing, the with/without-TTA columns) and each model's
summary (kept epoch, timing, a missing test split explained, per-class rows)."""

import pandas as pd
import pytest

from emotionnet import report


def _metrics(split, accuracy):
    """Metrics as evaluate writes them, with TTA figures 0.01 and 0.02 above the plain ones."""
    return {
        "split": split, "n": 10, "accuracy": accuracy, "macro_f1": accuracy - 0.1, "top2_accuracy": accuracy + 0.1, "log_loss": 1.2,
        "per_class": {"Angry": {"precision": 0.5, "recall": 0.25, "f1": 0.333, "support": 4}},
        "tta": {"accuracy": accuracy + 0.01, "macro_f1": accuracy - 0.09}, "tta_crops": {"accuracy": accuracy + 0.02, "macro_f1": accuracy - 0.08},
    }


@pytest.fixture
def table():
    info = {"params": 1234, "macs": 56789}
    history = pd.DataFrame({"epoch": [1, 2, 3], "epoch_seconds": [12.0, 10.0, 44.0], "elapsed_seconds": [12.0, 22.0, 66.0]})
    runs = {"m": (info, history, _metrics("val", 0.5), _metrics("test", 0.4))}
    return report.models_table(runs, {"both": (_metrics("val", 0.6), {"split": "test", "available": False, "note": "no test split"})}).set_index("name")


def test_model_row_times_are_median_epoch_and_total_minutes(table):
    row = table.loc["m"]
    assert (row["params"], row["macs"], row["epochs"]) == (1234, 56789, 3)
    assert row["seconds_per_epoch"] == 12.0  # median, not the mean 22.0
    assert row["train_minutes"] == 1.1  # the last elapsed time, 66 s


def test_tta_columns_hold_mirror_and_ten_view_figures(table):
    row = table.loc["m"]
    assert (row["val_accuracy"], row["val_accuracy_tta"], row["val_accuracy_tta10"]) == (0.5, 0.51, 0.52)
    assert (row["test_macro_f1"], row["test_macro_f1_tta"], row["test_macro_f1_tta10"]) == (0.3, 0.31, 0.32)
    ensemble = table.loc["both"]
    assert ensemble["kind"] == "ensemble" and ensemble["val_accuracy_tta10"] == 0.62
    assert pd.isna(ensemble["test_accuracy"]) and pd.isna(ensemble["params"])


def _summary(test_metrics):
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.4, 0.6, 0.5], "epoch_seconds": [10.0, 30.0, 20.0], "elapsed_seconds": [10.0, 40.0, 60.0]})
    info = {"architecture": "mini_xception", "params": 12345, "macs": 6789000}
    return report.model_summary("compact", info, history, _metrics("val", 0.6), test_metrics)


def test_summary_names_the_best_validation_epoch_not_the_worst_or_last():
    text = _summary(_metrics("test", 0.55))
    assert "weights kept from epoch 2 (best validation accuracy 0.6000)" in text
    assert "trained 3 epochs in 1.0 min (20.0 s per epoch, median)" in text
    assert "12,345 parameters, 6,789,000 multiply-adds" in text


def test_summary_says_why_the_test_split_is_missing():
    text = _summary({"split": "test", "available": False, "note": "the CSV has no PrivateTest rows"})
    assert "- **test**: not available: the CSV has no PrivateTest rows" in text
    assert "| Angry | 0.500 | 0.250 | 0.333 | 4 |" in text


def test_load_runs_groups_the_report_inputs_by_kind_and_name(tmp_path):
    import json

    def write(name, content):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    history = "epoch,val_accuracy,epoch_seconds,elapsed_seconds\n1,0.4,10.0,10.0\n2,0.5,11.0,21.0\n"
    files = {
        "model/a/info": write("a_info.json", {"params": 1, "macs": 2}), "model/a/history": write("a_history.csv", history),
        "model/a/val": write("a_val.json", _metrics("val", 0.5)), "model/a/test": write("a_test.json", _metrics("test", 0.4)),
        # an ensemble may share a model's name: they are told apart by the key, not the name
        "ensemble/a/val": write("e_val.json", _metrics("val", 0.7)), "ensemble/a/test": write("e_test.json", _metrics("test", 0.6)),
    }
    model_runs, ensemble_runs = report.load_runs(files)
    info, loaded_history, val, test = model_runs["a"]
    assert info == {"params": 1, "macs": 2} and loaded_history["val_accuracy"].tolist() == [0.4, 0.5]
    assert (val["accuracy"], test["accuracy"]) == (0.5, 0.4)
    assert list(ensemble_runs) == ["a"] and [metrics["accuracy"] for metrics in ensemble_runs["a"]] == [0.7, 0.6]
    table = report.models_table(model_runs, ensemble_runs)
    assert table["kind"].tolist() == ["model", "ensemble"] and table["val_accuracy"].tolist() == [0.5, 0.7]
