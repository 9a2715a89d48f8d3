"""The parse stage's outputs: split arrays, table, audit, drops, and nothing left on failure."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import csv_text
from emotionnet import data, prepare

SETTINGS = {"split_fractions": {"train": 0.8, "val": 0.1, "test": 0.1}, "seed": 0, "blank_std": 2.0, "drop_blank": True, "drop_cross_split_duplicates": True}


def _outputs(folder):
    names = [f"{split}_{kind}" for split in data.SPLITS for kind in ("images", "labels")]
    outputs = {name: folder / f"{name}.npy" for name in names}
    return {**outputs, "table": folder / "table.parquet", "audit": folder / "audit.json"}


def test_splits_table_and_audit(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    images[5] = 17  # blank
    usage[5] = "Training"
    usage[6], usage[7] = "Training", "PublicTest"
    images[6] = images[7]  # train image leaking into val
    labels[6] = labels[7]
    outputs = _outputs(tmp_path / "out")
    summary = prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **SETTINGS)
    table = pd.read_parquet(outputs["table"])
    assert len(table) == 60 and table["line"].tolist() == list(range(2, 62))
    assert table.loc[5, "blank"] and not table.loc[5, "used"]
    assert table.loc[6, "in_other_split"] and not table.loc[6, "used"]
    assert table.loc[7, "used"]
    assert summary["cross_split_duplicates"]["train-val"] == 1
    assert summary["dropped_from_train"] == 2
    assert json.loads(outputs["audit"].read_text()) == summary
    for split, usage_name in (("train", "Training"), ("val", "PublicTest"), ("test", "PrivateTest")):
        keep = (usage == usage_name) & ~np.isin(np.arange(60), [5, 6])
        split_images, split_labels = prepare.load_arrays(outputs[f"{split}_images"], outputs[f"{split}_labels"])
        np.testing.assert_array_equal(split_images, images[keep])
        np.testing.assert_array_equal(split_labels, labels[keep])
        assert split_images.dtype == np.uint8 and split_labels.dtype == np.int8
        rows = table[(table["split"] == split) & table["used"]]
        assert rows["index_in_split"].tolist() == list(range(keep.sum()))
        assert summary["splits"][split]["per_class"] == {name: int((labels[usage == usage_name] == k).sum()) for k, name in enumerate(data.EMOTIONS)}


def test_keeps_everything_when_drops_are_off(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    images[5] = 0
    usage[5] = "Training"
    usage[6], usage[7] = "Training", "PublicTest"
    images[6] = images[7]  # a train image that is also in val
    outputs = _outputs(tmp_path)
    prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **{**SETTINGS, "drop_blank": False, "drop_cross_split_duplicates": False})
    for usage_name, split in data.USAGE_TO_SPLIT.items():
        kept = np.load(outputs[f"{split}_images"])
        np.testing.assert_array_equal(kept, images[usage == usage_name])


def test_stratified_split_without_usage(rng, write_csv, tmp_path, caplog):
    images = rng.integers(0, 256, size=(200, 48, 48), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 50)
    outputs = _outputs(tmp_path)
    path = write_csv(csv_text(images, labels, header="emotion,pixels"))
    with caplog.at_level("INFO", logger="emotionnet.prepare"):
        summary = prepare.prepare(path, outputs, **SETTINGS)
    splits_from = "a split by label: parse.split_fractions {'train': 0.8, 'val': 0.1, 'test': 0.1}, parse.split_seed 0"
    assert summary["splits_from"] == splits_from and f"{path} has no Usage column: its rows get {splits_from}" in caplog.text
    assert [summary["splits"][split]["rows"] for split in data.SPLITS] == [160, 20, 20]
    assert summary["splits"]["val"]["per_class"]["Angry"] == 5
    again = _outputs(tmp_path / "again")
    prepare.prepare(path, again, **SETTINGS)
    np.testing.assert_array_equal(np.load(outputs["val_images"]), np.load(again["val_images"]))


def test_no_test_rows_gives_empty_test_split(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    usage[usage == "PrivateTest"] = "PublicTest"
    outputs = _outputs(tmp_path)
    summary = prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **SETTINGS)
    assert not summary["has_test_split"] and summary["splits_from"] == "the Usage column"
    assert np.load(outputs["test_images"]).shape == (0, 48, 48)


def test_failure_leaves_no_output(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    text = csv_text(images, labels, usage).replace(",PublicTest", ",Public", 1)
    folder = tmp_path / "out"
    with pytest.raises(data.CsvFormatError, match="unknown Usage 'Public'"):
        prepare.prepare(write_csv(text), _outputs(folder), **SETTINGS)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("missing", ["PublicTest", "Training"])
def test_a_missing_train_or_val_split_fails_naming_the_csv(small_dataset, write_csv, tmp_path, missing):
    images, labels, usage = small_dataset
    usage[usage == missing] = "PrivateTest"
    folder = tmp_path / "out"
    path = write_csv(csv_text(images, labels, usage))
    with pytest.raises(data.CsvFormatError, match=rf"{path.name}: no {missing} rows: training needs"):
        prepare.prepare(path, _outputs(folder), **SETTINGS)
    assert list(folder.iterdir()) == []


def test_training_rows_all_dropped_or_a_too_small_stratified_split_fail_saying_why(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    images[usage == "Training"] = 0  # every Training image blank
    with pytest.raises(data.CsvFormatError, match=r"all \d+ Training rows were dropped as blank"):
        prepare.prepare(write_csv(csv_text(images, labels, usage)), _outputs(tmp_path / "blank"), **SETTINGS)
    one_per_class = np.random.default_rng(1).integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    tiny = write_csv(csv_text(one_per_class, np.array([0, 1, 2]), header="emotion,pixels"), name="tiny.csv")
    with pytest.raises(data.CsvFormatError, match=r"tiny\.csv: the stratified split \(parse.split_fractions\) left no rows for the val split"):
        prepare.prepare(tiny, _outputs(tmp_path / "tiny"), **SETTINGS)


def test_blank_and_duplicate_bookkeeping(small_dataset, write_csv, tmp_path):
    """Blank images leave training only; duplicates within a split count all but the first copy;
    one image under two labels is one conflicting hash."""
    images, labels, usage = small_dataset
    usage[[1, 2, 3, 4]] = "Training"
    usage[5] = "PublicTest"
    images[5] = 40  # a blank validation image: kept
    images[1] = 17  # a blank training image: dropped
    images[3], labels[3] = images[2], labels[2]  # a duplicate within train
    images[4], labels[4] = images[2], (labels[2] + 1) % 7  # the same image under another label
    outputs = _outputs(tmp_path)
    summary = prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **SETTINGS)
    table = pd.read_parquet(outputs["table"])
    assert table.loc[5, "blank"] and table.loc[5, "used"]
    assert table.loc[1, "blank"] and not table.loc[1, "used"]
    assert summary["splits"]["val"]["used"] == (usage == "PublicTest").sum()
    assert summary["splits"]["train"]["used"] == (usage == "Training").sum() - 1
    assert summary["splits"]["train"]["duplicates_within"] == 2
    assert table["duplicate_in_split"].tolist()[2:5] == [False, True, True]
    assert summary["hashes_with_conflicting_labels"] == 1


def test_split_arrays_copied_in_several_row_blocks_hold_every_row(small_dataset, write_csv, tmp_path, monkeypatch):
    images, labels, usage = small_dataset
    monkeypatch.setattr(prepare, "ROW_BLOCK", 7)  # 60 rows -> several blocks per split
    outputs = _outputs(tmp_path)
    prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **{**SETTINGS, "drop_blank": False})
    for usage_name, split in data.USAGE_TO_SPLIT.items():
        split_images, split_labels = prepare.load_arrays(outputs[f"{split}_images"], outputs[f"{split}_labels"])
        np.testing.assert_array_equal(split_images, images[usage == usage_name])
        np.testing.assert_array_equal(split_labels, labels[usage == usage_name])


def test_cross_split_duplicates_are_counted_for_every_pair_and_only_train_copies_dropped(small_dataset, write_csv, tmp_path):
    images, labels, usage = small_dataset
    usage[[0, 1, 2, 3]] = ["Training", "PrivateTest", "PublicTest", "PrivateTest"]
    images[1] = images[0]  # train-test
    images[3] = images[2]  # val-test
    outputs = _outputs(tmp_path)
    summary = prepare.prepare(write_csv(csv_text(images, labels, usage)), outputs, **SETTINGS)
    assert summary["cross_split_duplicates"] == {"train-val": 0, "train-test": 1, "val-test": 1}
    table = pd.read_parquet(outputs["table"])
    assert table["used"].tolist()[:4] == [False, True, True, True]  # the test and val copies stay


def test_a_failure_after_the_arrays_are_written_leaves_no_output(small_dataset, write_csv, tmp_path, monkeypatch):
    images, labels, usage = small_dataset
    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit failed")
    monkeypatch.setattr(prepare, "audit", broken_audit)
    folder = tmp_path / "out"
    with pytest.raises(RuntimeError, match="audit failed"):
        prepare.prepare(write_csv(csv_text(images, labels, usage)), _outputs(folder), **SETTINGS)
    assert list(folder.iterdir()) == []
