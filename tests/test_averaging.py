"""Weight averaging (EMA): the update rule, swapping, and that training with it validates and keeps
the averaged weights."""

import keras
import numpy as np
import pytest
from conftest import learnable_images

from emotionnet import averaging, train


def _dense_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([np.zeros((3, 2), np.float32), np.zeros(2, np.float32)])
    return model


def test_update_follows_the_warmed_up_decay():
    model = _dense_model()
    average = averaging.WeightAverage(model, decay=0.99)
    model.set_weights([np.full((3, 2), 10.0, np.float32), np.full(2, 10.0, np.float32)])
    average.update()  # step 0: decay min(0.99, 1/10) = 0.1
    np.testing.assert_allclose(average.averages[0].numpy(), 9.0, rtol=1e-6)
    average.update()  # step 1: decay 2/11
    np.testing.assert_allclose(average.averages[1].numpy(), 2 / 11 * 9.0 + 9 / 11 * 10.0, rtol=1e-6)


def test_in_model_swaps_the_averages_in_and_back_out():
    model = _dense_model()
    average = averaging.WeightAverage(model, decay=0.5)
    model.set_weights([np.ones((3, 2), np.float32), np.ones(2, np.float32)])
    with average.in_model():
        np.testing.assert_array_equal(model.get_weights()[0], 0.0)
    np.testing.assert_array_equal(model.get_weights()[0], 1.0)
    np.testing.assert_array_equal(average.averages[0].numpy(), 0.0)


def test_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        averaging.WeightAverage(_dense_model(), decay=1.0)


def test_training_validates_and_keeps_the_averaged_weights(tmp_path):
    images, labels = learnable_images(192)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "epochs": 2, "batch_size": 32, "learning_rate": 3e-3, "weight_average_decay": 0.9}
    model, history = train.train(images, labels, images[:64], labels[:64], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    model.compile(loss="categorical_crossentropy", metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    kept = max(history, key=lambda row: row["val_accuracy"])
    scores = model.evaluate(train.make_dataset(images[:64], labels[:64], 512), return_dict=True, verbose=0)
    assert scores["accuracy"] == pytest.approx(kept["val_accuracy"], abs=1e-6)
    assert scores["loss"] == pytest.approx(kept["val_loss"], rel=1e-4)
    live = keras.saving.load_model(tmp_path / "checkpoint" / "last.keras")
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), live.get_weights(), strict=True))


def test_save_and_load_restore_the_averages_and_the_step(tmp_path):
    model = _dense_model()
    average = averaging.WeightAverage(model, decay=0.99)
    for value in (10.0, 20.0, 30.0):
        model.set_weights([np.full((3, 2), value, np.float32), np.full(2, value, np.float32)])
        average.update()
    average.save(tmp_path / "average.npz")
    again = averaging.WeightAverage(model, decay=0.99)  # starts from the model's current weights (30)
    again.load(tmp_path / "average.npz")
    assert int(again.step.numpy()) == 3
    assert not np.allclose(average.averages[0].numpy(), 30.0)  # so a load that restored nothing would fail below
    for saved, loaded in zip(average.averages, again.averages, strict=True):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
