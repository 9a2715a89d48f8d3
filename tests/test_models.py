"""The model registry: every architecture builds, has the documented size, and learns."""

import inspect
import subprocess
import sys
import keras
import numpy as np
import pytest
import yaml
from conftest import REPO, assert_loss_fell, learnable_images

from emotionnet import models, train


def test_seed_is_the_reference_architecture():
    model = models.build("seed")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.25, 0.5]
    assert model.count_params() == 3_984_775
    assert model.output_shape == (None, 7)
    # conv1 46*46*32*9, conv2 44*44*64*32*9, dense 30976*128 + 128*7
    assert models.multiply_adds(model) == 46 * 46 * 32 * 9 + 44 * 44 * 64 * 32 * 9 + 30976 * 128 + 128 * 7


def test_the_schema_lists_each_builders_hyperparameters():
    """The workflow checks hyperparameters at start-up against the schema, so it must name exactly
    the keyword arguments each builder takes (``input_shape`` is set by training, not the config)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    listed = {name: set(entry["properties"]) for name, entry in schema["$defs"]["hyperparameters"].items()}
    taken = {name: set(inspect.signature(builder).parameters) - {"input_shape"} for name, builder in models.REGISTRY.items()}
    assert listed == taken
    for name, entry in schema["$defs"]["hyperparameters"].items():  # defaults the start-up checks use
        parameters = inspect.signature(models.REGISTRY[name]).parameters
        for key, spec in entry["properties"].items():
            if "default" in spec:
                assert list(spec["default"]) == list(parameters[key].default), (name, key)
    assert set(schema["$defs"]["model_settings"]["properties"]["architecture"]["enum"]) == set(models.REGISTRY)


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_model_builds_with_softmax_output(name):
    model = models.build(name)
    probabilities = np.asarray(model(np.random.default_rng(0).random((3, 48, 48, 1), dtype=np.float32)))
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert models.multiply_adds(model) > 0


def test_mini_xception_is_compact():
    assert models.build("mini_xception").count_params() < 100_000


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="unknown architecture 'alexnet'"):
        models.build("alexnet")


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_a_few_steps_lower_the_loss(name):
    keras.utils.set_random_seed(0)
    images, labels = learnable_images(64)
    settings = {**train.DEFAULTS, "architecture": name, "learning_rate": 3e-3, "optimizer": "adam"}
    model = train.build_compiled_model(settings, steps_per_epoch=4)
    dataset = train.make_dataset(images, labels, 16)
    losses = model.fit(dataset, epochs=6, shuffle=False, verbose=0).history["loss"]
    assert_loss_fell(losses, below=0.6)


def test_model_with_code_is_refused(tmp_path):
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Lambda(lambda tensor: tensor * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(models.UnsafeModelError, match="lambda.keras: refused to load"):
        models.load(path)


def test_mixed_precision_trains_in_bfloat16_and_returns_a_float32_model(tmp_path):
    images, labels = learnable_images(128)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "epochs": 4, "batch_size": 32, "learning_rate": 3e-3, "precision": "mixed_bfloat16"}
    model, history = train.train(images, labels, images[:32], labels[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert_loss_fell([row["loss"] for row in history], below=0.85)
    trained = keras.saving.load_model(tmp_path / "checkpoint" / "last.keras")
    trained.load_weights(tmp_path / "checkpoint" / "best.weights.h5")
    convolutions = [layer for layer in trained.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16"}
    assert trained.layers[-1].compute_dtype == "float32"  # the softmax output keeps full precision
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is restored
    probabilities = np.asarray(model(images[:32, ..., None].astype(np.float32) / 255.0))
    np.testing.assert_allclose(probabilities, np.asarray(trained(images[:32, ..., None].astype(np.float32) / 255.0)), atol=0.05)


def test_crop_training_validates_and_saves_a_model_for_whole_images(tmp_path):
    images, labels = learnable_images(128)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "epochs": 4, "batch_size": 32, "learning_rate": 3e-3, "crop": 40}
    model, history = train.train(images, labels, images[:32], labels[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert_loss_fell([row["loss"] for row in history], below=0.85)
    assert model.input_shape == (None, 48, 48, 1)
    trained = keras.saving.load_model(tmp_path / "checkpoint" / "last.keras")  # what trained: any image size
    assert trained.input_shape == (None, None, None, 1)
    trained.load_weights(tmp_path / "checkpoint" / "best.weights.h5")
    whole = images[:32, ..., None].astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(model(whole)), np.asarray(trained(whole)), atol=1e-6)
    evaluated = trained.evaluate(whole, np.eye(7)[labels[:32]], verbose=0, return_dict=True)["accuracy"]
    assert evaluated == max(row["val_accuracy"] for row in history)  # validation saw whole images


def test_crop_training_needs_a_global_pooling_architecture():
    with pytest.raises(ValueError, match="architecture 'seed' takes only 48x48 images .* cannot train on crops"):
        train.build_compiled_model({**train.DEFAULTS, "architecture": "seed", "crop": 40}, steps_per_epoch=1)


def test_vgg_flatten_head_keeps_the_feature_map_layout_and_learns():
    model = models.build("vgg_bn", widths=[8, 16], convs_per_stage=1, head="flatten", dense_units=32)
    flatten = model.get_layer("head_flatten")
    assert flatten.input.shape[1:] == (24, 24, 16) and flatten.output.shape[-1] == 24 * 24 * 16
    assert model.get_layer("head_dense").units == 32
    assert not any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in model.layers)
    average = models.build("vgg_bn", widths=[8, 16], convs_per_stage=1)
    # the head adds a 9216x32 dense layer (MACs and weights) and its batch norm (4 x 32 weights)
    assert models.multiply_adds(model) - models.multiply_adds(average) == 24 * 24 * 16 * 32 + 32 * 7 - 16 * 7
    assert model.count_params() - average.count_params() == 24 * 24 * 16 * 32 + 4 * 32 + (32 - 16) * 7
    keras.utils.set_random_seed(0)
    images, labels = learnable_images(64)
    settings = {**train.DEFAULTS, "architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1, "head": "flatten", "dense_units": 32}, "learning_rate": 3e-3, "optimizer": "adam"}
    compiled = train.build_compiled_model(settings, steps_per_epoch=4)
    losses = compiled.fit(train.make_dataset(images, labels, 16), epochs=6, shuffle=False, verbose=0).history["loss"]
    assert_loss_fell(losses, below=0.6)


def test_vgg_flatten_head_refuses_crops_and_unknown_heads():
    with pytest.raises(ValueError, match="architecture 'vgg_bn' with head 'flatten' takes only 48x48 images .* cannot train on crops"):
        train.build_compiled_model({**train.DEFAULTS, "architecture": "vgg_bn", "hyperparameters": {"head": "flatten"}, "crop": 40}, steps_per_epoch=1)
    with pytest.raises(ValueError, match="vgg_bn: head must be 'average' or 'flatten', got 'max'"):
        models.build("vgg_bn", head="max")


def test_standardized_vgg_ignores_brightness_and_contrast():
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).uniform(0.2, 0.6, (8, 40, 40, 1)).astype(np.float32)
    changed = 1.5 * images + 0.1   # brighter, with more contrast, still within [0, 1]
    standardized = models.build("vgg_bn", widths=[8, 16], convs_per_stage=1, standardize=True, input_shape=(None, None, 1))
    plain = models.build("vgg_bn", widths=[8, 16], convs_per_stage=1, input_shape=(None, None, 1))
    assert standardized.count_params() == plain.count_params()   # the layer has no weights
    layer = standardized.get_layer("standardize")
    assert standardized.layers[1] is layer   # right after the input, before the first convolution
    outputs = np.asarray(layer(images))
    np.testing.assert_allclose(outputs.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(outputs.std(axis=(1, 2, 3)), 1, atol=0.01)   # the epsilon shrinks it a little
    np.testing.assert_allclose(np.asarray(layer(changed)), outputs, atol=0.02)
    probabilities = np.asarray(standardized(images))
    np.testing.assert_allclose(np.asarray(standardized(changed)), probabilities, atol=5e-3)
    assert (np.asarray(standardized(changed)).argmax(axis=1) == probabilities.argmax(axis=1)).all()
    flat = np.full((1, 48, 48, 1), 0.5, np.float32)   # a blank image stays finite
    assert np.isfinite(np.asarray(standardized(flat))).all()


def test_standardized_vgg_learns_on_crops_in_bfloat16_and_saves_for_whole_images(tmp_path):
    # the label is the period of horizontal stripes, not the brightness (which standardizing removes)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 128)
    stripes = np.sin(2 * np.pi * np.arange(48)[None, :, None] / (2 + labels[:, None, None])) > 0
    train_images = (rng.uniform(40, 120, (128, 1, 1)) + 80 * stripes + rng.normal(0, 10, (128, 48, 48))).clip(0, 255).astype(np.uint8)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1, "standardize": True}, "epochs": 4, "batch_size": 32, "learning_rate": 3e-3, "crop": 40, "precision": "mixed_bfloat16"}
    model, history = train.train(train_images, labels, train_images[:32], labels[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert_loss_fell([row["loss"] for row in history], below=0.85)
    assert model.get_layer("standardize").dtype_policy.name == "float32"   # the saved copy: float32, whole images
    assert model.input_shape == (None, 48, 48, 1)


def test_a_misspelt_hyperparameter_is_refused_not_ignored():
    with pytest.raises(ValueError, match=r"architecture 'resnet' has no hyperparameter 'block_per_stage'; it takes: widths, blocks_per_stage, dropout"):
        models.build("resnet", block_per_stage=1)


CONFIGURED_MODELS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]


@pytest.mark.parametrize("name", sorted(CONFIGURED_MODELS))
def test_every_configured_model_builds_from_its_config_block(name):
    model = train.build_compiled_model({**train.DEFAULTS, **CONFIGURED_MODELS[name]}, steps_per_epoch=1)
    assert model.output_shape == (None, 7)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_applies_the_configured_weight_decay(optimizer):
    settings = {**train.DEFAULTS, "optimizer": optimizer, "learning_rate": 0.1, "weight_decay": 0.5}
    weights = keras.Variable(np.ones(3, np.float32))
    train.make_optimizer(settings, steps_per_epoch=1).apply_gradients([(np.zeros(3, np.float32), weights)])
    np.testing.assert_allclose(weights.numpy(), 1 - 0.1 * 0.5)  # zero gradient: only the decay moves them


def test_resnet_takes_blocks_per_stage_as_one_number_or_one_per_stage():
    def blocks(model):
        return sorted({layer.name.split("_")[0] + "_" + layer.name.split("_")[1] for layer in model.layers if layer.name.endswith("_add")})

    assert blocks(models.build("resnet", widths=[8, 16], blocks_per_stage=2)) == ["stage0_block0", "stage0_block1", "stage1_block0", "stage1_block1"]
    assert blocks(models.build("resnet", widths=[8, 16], blocks_per_stage=[1, 3])) == ["stage0_block0", "stage1_block0", "stage1_block1", "stage1_block2"]
    with pytest.raises(ValueError, match="one such number per stage"):
        models.build("resnet", widths=[8, 16], blocks_per_stage=[1, 2, 3])


def _convs(model):
    return [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]


def test_vgg_builds_convs_per_stage_convolutions_in_every_stage():
    assert len(_convs(models.build("vgg_bn", widths=[8, 16], convs_per_stage=3))) == 6
    assert len(_convs(models.build("vgg_bn"))) == 8  # default: 4 stages x 2


def test_vgg_average_head_applies_the_configured_dropout_before_the_classifier():
    model = models.build("vgg_bn", widths=[8, 16], convs_per_stage=1, dropout=0.4)
    assert isinstance(model.layers[-2], keras.layers.Dropout) and model.layers[-2].rate == 0.4


def test_resnet_keeps_full_resolution_in_stage0_and_halves_it_per_later_stage():
    model = models.build("resnet", widths=[8, 16, 32], blocks_per_stage=1)
    sides = [model.get_layer(f"stage{stage}_block0_out").output.shape[1:3] for stage in range(3)]
    assert sides == [(48, 48), (24, 24), (12, 12)]


def test_resnet_blocks_add_their_shortcut():
    model = models.build("resnet", widths=[8, 16], blocks_per_stage=2)
    # identity shortcut: the second block of stage 0 adds the first block's output
    add = model.get_layer("stage0_block1_add")
    assert any(tensor is model.get_layer("stage0_block0_out").output for tensor in add.input)
    # projection shortcut: the first block of stage 1 adds the 1x1 projection
    add = model.get_layer("stage1_block0_add")
    assert any(tensor is model.get_layer("stage1_block0_project_bn").output for tensor in add.input)


def test_mini_xception_has_two_stem_convolutions():
    model = models.build("mini_xception")
    assert [layer.name for layer in _convs(model)][:2] == ["stem0_conv", "stem1_conv"]
    assert model.get_layer("stem1_conv").input is model.get_layer("stem0_relu").output


def test_multiply_adds_counts_separable_convs_as_depthwise_plus_pointwise():
    inputs = keras.Input((10, 10, 4))
    outputs = keras.layers.SeparableConv2D(6, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    assert models.multiply_adds(model) == 10 * 10 * 4 * 9 + 10 * 10 * 4 * 6


def test_a_folder_given_as_model_file_is_named_as_a_folder(tmp_path):
    with pytest.raises(ValueError, match="a folder, not a model file"):
        models.require_model_file(tmp_path)


SMALL_HYPERPARAMETERS = {"seed": {}, "vgg_bn": {"widths": [8, 16]}, "resnet": {"widths": [8, 16], "blocks_per_stage": 1}, "mini_xception": {}}


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_no_architecture_has_a_strided_1x1_convolution(name):
    """oneDNN's weight gradient of such a convolution crashes the process on odd batch sizes with
    fewer than 16 input channels; projections subsample first instead."""
    for hyperparameters in ({}, SMALL_HYPERPARAMETERS[name]):
        model = models.build(name, **hyperparameters)
        assert [layer.name for layer in _convs(model) if layer.kernel_size == (1, 1) and layer.strides != (1, 1)] == []


@pytest.mark.parametrize("side", [48, 45])
def test_a_subsampled_projection_computes_what_a_strided_1x1_convolution_does(side):
    images = np.random.default_rng(0).random((3, side, side, 8), dtype=np.float32)
    inputs = keras.Input((side, side, 8))
    subsampled = keras.Model(inputs, models._projection(inputs, 16, 2, "block"))
    strided = keras.layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)
    strided.build((None, side, side, 8))
    strided.set_weights(subsampled.get_layer("block_project").get_weights())
    expected = np.asarray(strided(images))
    assert expected.shape == (3, (side + 1) // 2, (side + 1) // 2, 16)
    np.testing.assert_allclose(np.asarray(subsampled(images)), expected, rtol=1e-5, atol=1e-6)


def test_every_architecture_trains_on_odd_sized_batches_with_two_threads():
    """In its own process, since the failure this guards against is a crash (a 1x1 stride-2
    convolution's weight gradient with 8 input channels, batches of 3 and 37), in float32 and in
    bfloat16 mixed precision."""
    script = f"""
import numpy as np
from emotionnet import runtime, train
runtime.configure(threads=2, seed=0)
for architecture, hyperparameters in {SMALL_HYPERPARAMETERS!r}.items():
    for precision in ("float32", "mixed_bfloat16"):
        settings = {{**train.DEFAULTS, "architecture": architecture, "hyperparameters": hyperparameters, "precision": precision}}
        model = train.build_compiled_model(settings, steps_per_epoch=2, steps_per_call=1)
        for size in (3, 37):
            model.fit(np.random.default_rng(size).random((size, 48, 48, 1), dtype=np.float32), np.eye(7, dtype=np.float32)[np.arange(size) % 7], batch_size=size, epochs=1, verbose=0)
        print("trained", architecture, precision, flush=True)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:-1] == [f"trained {name} {precision}" for name in SMALL_HYPERPARAMETERS for precision in ("float32", "mixed_bfloat16")]
