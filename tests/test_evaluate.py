"""Metrics against hand-computed values; ensembles give valid probabilities."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from emotionnet import evaluate, models


def test_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 3, 3, 3])
    predicted = np.array([0, 1, 1, 1, 2, 3, 3, 0])
    probabilities = np.full((8, 7), 0.01)
    probabilities[np.arange(8), predicted] = 0.94
    probabilities[[1, 7], [0, 3]] = 0.03  # the true class comes second in both errors
    metrics = evaluate.classification_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["per_class"]["Angry"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["Disgust"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["Happy"]["recall"] == pytest.approx(2 / 3)
    f1 = [0.5, 0.8, 1.0, 0.8]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert metrics["confusion_matrix"][3] == [1, 0, 0, 2, 0, 0, 0]
    assert metrics["top2_accuracy"] == pytest.approx(1.0)
    assert metrics["log_loss"] == pytest.approx(-(6 * np.log(0.94) + 2 * np.log(0.03)) / 8)


def test_ensemble_of_two_models_on_synthetic_data():
    from emotionnet import synthetic

    keras.utils.set_random_seed(0)
    images, labels, _ = synthetic.generate(80, seed=5)
    members = [models.build("mini_xception"), models.build("vgg_bn", widths=(8, 16))]
    metrics, table = evaluate.evaluate(members, images, labels, split="val", tta=True)
    probabilities = table[[column for column in table if column.startswith("p_")]].to_numpy()
    assert metrics["n"] == 80 and metrics["tta"]["n"] == 80
    assert metrics["accuracy"] == pytest.approx((probabilities.argmax(axis=1) == labels).mean())
    assert np.sum(metrics["confusion_matrix"]) == 80 and np.isfinite(metrics["log_loss"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    mean = (evaluate.predict_probabilities(members[0], images) + evaluate.predict_probabilities(members[1], images)) / 2
    np.testing.assert_allclose(probabilities, mean, rtol=1e-5)
    # the TTA metrics are those of the members' mean over each image and its mirror (the untrained
    # members' outputs are near uniform, so the mirror moves the log loss by ~1e-5 only: rel=1e-6)
    mirrored = images[:, :, ::-1]
    tta_mean = sum(evaluate.predict_probabilities(member, views) for member in members for views in (images, mirrored)) / 4
    assert np.abs(tta_mean - mean).max() > 1e-5  # the mirror views change the probabilities
    assert metrics["tta"]["accuracy"] == pytest.approx((tta_mean.argmax(axis=1) == labels).mean())
    assert metrics["tta"]["log_loss"] == pytest.approx(-np.log(tta_mean[np.arange(80), labels]).mean(), rel=1e-6)
    assert metrics["tta"]["log_loss"] != pytest.approx(-np.log(mean[np.arange(80), labels]).mean(), rel=1e-6)


def test_empty_split_says_so():
    metrics, table = evaluate.evaluate([models.build("seed")], np.empty((0, 48, 48), np.uint8), np.empty(0, np.int8), split="test", tta=True)
    assert metrics["available"] is False and metrics["n"] == 0 and "PrivateTest" in metrics["note"]
    assert len(table) == 0


def test_tta_views_are_the_image_its_mirror_and_shifted_crops(rng):
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert len(evaluate.tta_views(images, tta=False)) == 1
    mirror = evaluate.tta_views(images, tta=True)
    assert len(mirror) == 2 and np.array_equal(mirror[1], images[:, :, ::-1])
    views = evaluate.tta_views(images, tta=True, crop_shift=2)
    assert len(views) == 10 and all(view.shape == images.shape for view in views)
    assert np.array_equal(views[0], images)  # the centre crop of the padded image is the image
    assert np.array_equal(views[1][:, 2:, 2:], images[:, :-2, :-2])  # shifted down-right by 2 pixels


def test_results_are_renamed_into_place_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    labels = np.array([0, 3, 6])
    metrics, predictions = evaluate.evaluate([], np.empty((0, 48, 48), np.uint8), labels[:0], split="test", tta=False)
    metrics_path, predictions_path = tmp_path / "metrics.json", tmp_path / "predictions.parquet"
    evaluate.write_results(metrics, predictions, metrics_path, predictions_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json", "predictions.parquet"]
    assert json.loads(metrics_path.read_text()) == metrics
    assert pd.read_parquet(predictions_path).columns.tolist() == predictions.columns.tolist()

    def disk_full(self, path, **keywords):
        Path(path).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError):
        evaluate.write_results(metrics, predictions, tmp_path / "other.json", tmp_path / "other.parquet")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json", "predictions.parquet"]


def test_the_four_shifted_crops_are_the_four_diagonal_shifts(rng):
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    centre, down_right, down_left, up_right, up_left = evaluate.shifted_crops(images, 2)
    assert np.array_equal(centre, images)
    assert np.array_equal(down_right[:, 2:, 2:], images[:, :-2, :-2])
    assert np.array_equal(down_left[:, 2:, :-2], images[:, :-2, 2:])
    assert np.array_equal(up_right[:, :-2, 2:], images[:, 2:, :-2])
    assert np.array_equal(up_left[:, :-2, :-2], images[:, 2:, 2:])


def test_ten_view_metrics_use_the_configured_shift(rng):
    keras.utils.set_random_seed(0)
    model = models.build("vgg_bn", widths=(8, 16))
    images = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 20)
    metrics, _ = evaluate.evaluate([model], images, labels, split="val", tta=True, crop_shift=4)
    views = evaluate.tta_views(images, tta=True, crop_shift=4)
    mean = sum(evaluate.predict_probabilities(model, view) for view in views) / len(views)
    assert metrics["tta_crops"]["log_loss"] == pytest.approx(-np.log(mean[np.arange(20), labels]).mean(), rel=1e-6)
    assert metrics["tta_crops"]["log_loss"] != pytest.approx(metrics["tta"]["log_loss"], rel=1e-6)


def test_log_loss_of_a_zero_probability_is_clipped_not_infinite():
    probabilities = np.zeros((1, 7))
    probabilities[0, 1] = 1.0
    assert evaluate.classification_metrics(np.array([0]), probabilities)["log_loss"] == pytest.approx(-np.log(1e-7))


def test_predictions_table_names_the_most_probable_class():
    probabilities = np.eye(7, dtype=np.float32)[[3, 3, 0]]
    table = evaluate.predictions_table(np.array([3, 5, 6]), probabilities)
    assert table["predicted"].tolist() == [3, 3, 0]
    assert table["predicted_emotion"].tolist() == ["Happy", "Happy", "Angry"]
    assert table["true_emotion"].tolist() == ["Happy", "Surprise", "Neutral"]


def test_a_last_batch_of_one_image_is_predicted():
    model = models.build("seed")
    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(evaluate.predict_probabilities(model, images, batch_size=4), evaluate.predict_probabilities(model, images), atol=1e-6)
