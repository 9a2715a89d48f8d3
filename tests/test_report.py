"""The report's table of all models: sizes, timing and the with/without-TTA columns."""

import pandas as pd
import pytest

from emotionnet import report


def _metrics(split, accuracy):
    return {"split": split, "n": 10, "accuracy": accuracy, "macro_f1": accuracy - 0.1, "tta": {"accuracy": accuracy + 0.01, "macro_f1": accuracy - 0.09}, "tta_crops": {"accuracy": accuracy + 0.02, "macro_f1": accuracy - 0.08}}


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
