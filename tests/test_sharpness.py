"""Sharpness-aware training: a step applies the gradient taken at the perturbed weights to the
unperturbed ones, checkpoints resume as such a model, and the saved model is a plain one."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_loss_fell, learnable_images

from emotionnet import sharpness, train

RHO = 0.05
LEARNING_RATE = 0.5


def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def gradients_at(model, weights, x, y):
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(x)))
    return [np.asarray(gradient) for gradient in tape.gradient(loss, model.trainable_weights)]


def test_a_step_applies_the_gradient_at_the_weights_moved_uphill():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    reference = small_model()
    start = reference.get_weights()
    gradients = gradients_at(reference, start, x, y)
    norm = np.sqrt(sum(float((gradient**2).sum()) for gradient in gradients))
    moved = [weight + RHO * gradient / norm for weight, gradient in zip(start, gradients, strict=True)]
    sharp_gradients = gradients_at(reference, moved, x, y)
    expected = [weight - LEARNING_RATE * gradient for weight, gradient in zip(start, sharp_gradients, strict=True)]
    plain_step = [weight - LEARNING_RATE * gradient for weight, gradient in zip(start, gradients, strict=True)]

    model = sharpness.sharpness_aware(small_model(), RHO)
    model.set_weights(start)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for weight, wanted, plain in zip(model.get_weights(), expected, plain_step, strict=True):
        np.testing.assert_allclose(weight, wanted, atol=1e-6)
    assert max(np.abs(want - plain).max() for want, plain in zip(expected, plain_step, strict=True)) > 1e-4  # the test tells SAM from a plain step


def model_with_state():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dropout(0.5, seed=3)(keras.layers.BatchNormalization()(keras.layers.Dense(8, activation="relu")(inputs)))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_the_second_pass_drops_the_same_units_and_keeps_no_state():
    """With a vanishing ``rho`` a SAM step is a plain step: only if the second pass draws the
    first one's dropout masks; and after it the moving statistics and seeds are a plain step's."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    plain = model_with_state()
    sharp = sharpness.sharpness_aware(model_with_state(), 1e-9)
    for model in (plain, sharp):
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="categorical_crossentropy", steps_per_execution=2)
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(sharp.get_weights()[0], plain.get_weights()[0], atol=1e-6)
    for one, other in zip(sharp.non_trainable_variables, plain.non_trainable_variables, strict=True):
        assert one.name == other.name
        np.testing.assert_allclose(np.asarray(one), np.asarray(other), atol=1e-6, err_msg=one.path)
    assert any("seed_generator_state" in variable.path for variable in sharp.non_trainable_variables)


@pytest.mark.parametrize("rho", [0, -0.1])
def test_rho_must_be_positive(rho):
    with pytest.raises(ValueError, match="rho > 0"):
        sharpness.sharpness_aware(small_model(), rho)


def test_the_setting_picks_the_training_step():
    settings = {**train.DEFAULTS, "architecture": "vgg_bn", "hyperparameters": {"widths": [8]}}
    assert train.DEFAULTS["sam_rho"] == 0 and not isinstance(train.build_compiled_model(settings, 2), sharpness.SharpnessAwareModel)
    model = train.build_compiled_model({**settings, "sam_rho": RHO}, 2)
    assert isinstance(model, sharpness.SharpnessAwareModel) and model.rho == RHO
    assert train.fingerprint(settings, 0, np.zeros(1), np.zeros(1)) != train.fingerprint({**settings, "sam_rho": RHO}, 0, np.zeros(1), np.zeros(1))


def test_a_sharpness_aware_run_learns_checkpoints_as_such_and_saves_a_plain_model(tmp_path):
    images, labels = learnable_images(128)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "epochs": 4, "batch_size": 32, "learning_rate": 3e-3, "sam_rho": RHO, "precision": "mixed_bfloat16"}
    model, history = train.train(images, labels, images[:32], labels[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert_loss_fell([row["loss"] for row in history], 0.8)
    checkpointed = keras.saving.load_model(tmp_path / "checkpoint" / "last.keras")
    assert isinstance(checkpointed, sharpness.SharpnessAwareModel) and checkpointed.rho == RHO
    assert type(model) is keras.Model or type(model).__name__ == "Functional"
    assert model.dtype_policy.name == "float32"
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        assert "emotionnet" not in archive.read("config.json").decode()  # plain Keras loads it
    checkpointed.load_weights(tmp_path / "checkpoint" / "best.weights.h5")
    whole = images[:32, ..., None].astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(model(whole)), np.asarray(tf.cast(checkpointed(whole), tf.float32)), atol=2e-2)
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["history"] == history
