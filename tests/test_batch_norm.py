"""The fused batch-norm layer computes what Keras' layer computes, trains through the fused op, and
never reaches a saved model."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import learnable_images

from emotionnet import models, train


def layer_pair(shape, policy):
    """A Keras and a fused batch-norm layer with the same (non-trivial) weights."""
    with train.dtype_policy(policy):
        plain, fused = keras.layers.BatchNormalization(), models.FusedBatchNormalization()
    for layer in (plain, fused):
        layer.build(shape)
    rng = np.random.default_rng(0)
    plain.set_weights([rng.uniform(0.5, 1.5, shape[-1]), rng.normal(size=shape[-1]), rng.normal(size=shape[-1]), rng.uniform(0.5, 2, shape[-1])])
    fused.set_weights(plain.get_weights())
    return plain, fused


def training_step(layer, inputs, upstream):
    """Output, gradients (input, gamma, beta) of sum(output * upstream) in training mode."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=True)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
    gradients = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
    return [np.asarray(tf.cast(value, tf.float32)) for value in [outputs, *gradients]]


@pytest.mark.parametrize("shape", [(16, 6, 6, 12), (16, 6, 6, 32), (32, 12)])  # 12 channels: bfloat16 runs in float32
@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 1e-2)])
def test_fused_layer_trains_and_averages_as_keras_layer(shape, policy, tolerance):
    plain, fused = layer_pair(shape, policy)
    rng = np.random.default_rng(1)
    inputs = tf.cast(rng.normal(1.0, 3.0, shape).astype(np.float32), plain.compute_dtype)
    upstream = rng.normal(size=shape).astype(np.float32)
    for _ in range(3):  # the moving averages move the same way step after step
        expected, got = training_step(plain, inputs, upstream), training_step(fused, inputs, upstream)
        for name, want, have in zip(("output", "input gradient", "gamma gradient", "beta gradient"), expected, got, strict=True):
            np.testing.assert_allclose(have, want, atol=tolerance * np.abs(want).max(), err_msg=name)
    # the moving variance is the biased batch variance, as Keras averages it (not the fused op's unbiased one)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)
    assert fused(inputs, training=True).dtype == plain.compute_dtype


def test_fused_layer_infers_as_keras_layer():
    plain, fused = layer_pair((8, 5, 5, 4), "float32")
    inputs = np.random.default_rng(2).normal(size=(8, 5, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(fused(inputs, training=False), plain(inputs, training=False))


def test_fused_layer_trains_through_the_fused_op_and_keras_layer_does_not():
    def op_types(layer):
        step = tf.function(lambda inputs: layer(inputs, training=True))
        return {op.type for op in step.get_concrete_function(tf.TensorSpec((4, 6, 6, 3), tf.float32)).graph.get_operations()}

    plain, fused = layer_pair((4, 6, 6, 3), "float32")
    assert "FusedBatchNormV3" in op_types(fused)
    assert "FusedBatchNormV3" not in op_types(plain)


def test_with_batch_norm_swaps_only_the_batch_norm_layers():
    built = models.build("resnet", widths=[8, 16], blocks_per_stage=1)
    fused = models.with_batch_norm(built, "fused")
    assert models.with_batch_norm(built, "keras") is built
    kinds = [type(layer).__name__ for layer in built.layers]
    assert [type(layer).__name__ for layer in fused.layers] == [kind.replace("BatchNormalization", "FusedBatchNormalization") for kind in kinds]
    assert kinds.count("BatchNormalization") == 6  # stem, 2 per block, the projection's
    fused.set_weights(built.get_weights())  # the same weights in the same order
    images = np.random.default_rng(3).random((4, 48, 48, 1), dtype=np.float32)
    np.testing.assert_allclose(fused(images), built(images), atol=1e-6)
    with pytest.raises(ValueError, match="unknown batch_norm 'batch'"):
        models.with_batch_norm(built, "batch")


def test_a_fused_run_trains_faster_layers_and_saves_keras_layers(tmp_path):
    images, labels = learnable_images(128)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "epochs": 4, "batch_size": 32, "learning_rate": 3e-3, "batch_norm": "fused"}
    assert train.DEFAULTS["batch_norm"] == "fused"
    model, history = train.train(images, labels, images[:32], labels[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert history[-1]["loss"] < history[0]["loss"]
    trained = keras.saving.load_model(tmp_path / "checkpoint" / "last.keras")
    assert sum(isinstance(layer, models.FusedBatchNormalization) for layer in trained.layers) == 2
    assert not any(isinstance(layer, models.FusedBatchNormalization) for layer in model.layers)
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        saved = json.loads(archive.read("config.json"))
    assert "emotionnet" not in json.dumps(saved)  # plain Keras loads it, without this package
    trained.load_weights(tmp_path / "checkpoint" / "best.weights.h5")
    whole = images[:32, ..., None].astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(model(whole)), np.asarray(trained(whole)), atol=1e-6)


def test_keras_batch_norm_stays_available_and_resumes_to_the_same_weights(tmp_path):
    """``batch_norm: keras`` trains Keras' own layers (the models whose figures were trained with
    them); the setting is part of the run's fingerprint, so a checkpoint of one is not resumed by
    the other."""
    images, labels = learnable_images(64)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8]}, "epochs": 1, "batch_size": 32, "batch_norm": "keras"}
    model = train.build_compiled_model({**train.DEFAULTS, **settings}, 2)
    assert not any(isinstance(layer, models.FusedBatchNormalization) for layer in model.layers)
    fused = {**train.DEFAULTS, **settings, "batch_norm": "fused"}
    assert train.fingerprint({**train.DEFAULTS, **settings}, 0, labels, labels) != train.fingerprint(fused, 0, labels, labels)


def test_a_network_without_batch_norm_is_not_copied():
    built = models.build("seed")
    assert models.with_batch_norm(built, "fused") is built
    assert not models.has_fused_batch_norm(built) and models.has_fused_batch_norm(models.with_batch_norm(models.build("vgg_bn", widths=[8]), "fused"))


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_the_saved_copy_does_not_depend_on_the_models_built_before_it(tmp_path, name):
    """A resumed training process builds fewer models than an uninterrupted one before the float32
    copy it saves; the weight files must still be byte-identical."""
    first = models.build(name)
    for _ in range(2):
        models.with_batch_norm(models.build(name), "fused")
    later = models.build(name)
    later.set_weights(first.get_weights())
    first.save_weights(tmp_path / "first.weights.h5")
    later.save_weights(tmp_path / "later.weights.h5")
    assert (tmp_path / "first.weights.h5").read_bytes() == (tmp_path / "later.weights.h5").read_bytes()


def test_bfloat16_batch_norm_over_channels_onednn_runs_slowly_in_bfloat16_is_fused_in_float32():
    def fused_input_types(channels):
        _, layer = layer_pair((4, 6, 6, channels), "mixed_bfloat16")
        step = tf.function(lambda inputs: layer(inputs, training=True))
        graph = step.get_concrete_function(tf.TensorSpec((4, 6, 6, channels), tf.bfloat16)).graph
        return {op.get_attr("T") for op in graph.get_operations() if op.type == "FusedBatchNormV3"}

    assert fused_input_types(32) == {tf.bfloat16}
    assert fused_input_types(8) == fused_input_types(56) == {tf.float32}
