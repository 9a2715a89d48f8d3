"""The model registry: architectures by name. Every builder takes its own hyperparameters from the
config's model block (``build`` refuses names a builder does not take), and returns an uncompiled
``keras.Model`` whose inputs are float images scaled to [0, 1] with shape (48, 48, 1) (the
global-pooling architectures can also be built for other sizes, to train on crops). The output
layer always computes in float32, so that under a mixed-precision policy the probabilities (and
the loss) keep full precision. Every layer has a fixed name (those Keras would give it in a fresh
process), so a model built later in a process saves the same weight file as one built first."""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path

import keras

INPUT_SHAPE = (48, 48, 1)
N_CLASSES = 7
# Raised whenever a builder lays out other layers for the same hyperparameters, so that a training
# checkpoint written with the old layers is not resumed (2: projections subsample, then 1x1 conv).
LAYOUT_VERSION = 2


def seed(dropout_conv: float = 0.25, dropout_dense: float = 0.5):
    """The reference CNN: Conv32-Conv64-MaxPool-Dropout-Flatten-Dense128-Dropout-Dense7."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="input_layer"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv2d"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv2d_1"),
            keras.layers.MaxPooling2D(2, name="max_pooling2d"),
            keras.layers.Dropout(dropout_conv, name="dropout"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense"),
            keras.layers.Dropout(dropout_dense, name="dropout_1"),
            keras.layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="dense_1"),
        ],
        name="seed",
    )


def _conv_bn_relu(tensor, filters, name):
    tensor = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(tensor)
    tensor = keras.layers.BatchNormalization(name=f"{name}_bn")(tensor)
    return keras.layers.ReLU(name=f"{name}_relu")(tensor)


def _projection(tensor, filters, strides, name):
    """A 1x1 convolution shortcut. With stride 2 it is written as a subsampling (a 1x1 max pool
    with stride 2 keeps exactly the pixels a strided 1x1 convolution reads) followed by a 1x1
    convolution with the same weights: on the CPU, oneDNN's kernel for the weight gradient of a
    strided 1x1 convolution (TensorFlow 2.21) writes past its workspace when the input has fewer
    than 16 channels and the batch an odd size, and the training process crashes."""
    if strides != 1:
        tensor = keras.layers.MaxPooling2D(1, strides, name=f"{name}_subsample")(tensor)
    return keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(tensor)


def _classifier(tensor, dropout):
    """Dropout, then the 7-way softmax layer (in float32)."""
    tensor = keras.layers.Dropout(dropout, name="dropout")(tensor)
    return keras.layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="dense")(tensor)


def standardize_images(tensor):
    """Each image shifted and scaled to mean 0 and standard deviation 1 over its pixels (a
    parameter-free layer normalization), so that brightness and contrast no longer matter; the
    epsilon keeps a flat image finite."""
    return keras.layers.LayerNormalization(axis=[1, 2, 3], center=False, scale=False, epsilon=1e-4, name="standardize")(tensor)


def vgg_bn(widths=(32, 64, 128, 256), convs_per_stage: int = 2, dropout: float = 0.3, head: str = "average", dense_units: int = 256, standardize: bool = False, input_shape=INPUT_SHAPE):
    """VGG-style stages of 3x3 conv + batch norm + ReLU, max-pooling between stages, then the head:
    ``"average"``, global average pooling (any image size, so it trains on crops); or
    ``"flatten"``, the last feature map flattened into a dense layer of ``dense_units`` (keeps where
    on the face a feature was found; 48x48 images only). Dropout before the classifier.
    ``standardize`` first brings every image to mean 0 and standard deviation 1."""
    if head not in ("average", "flatten"):
        raise ValueError(f"vgg_bn: head must be 'average' or 'flatten', got {head!r}")
    if head == "flatten" and tuple(input_shape) != INPUT_SHAPE:
        raise ValueError(f"architecture 'vgg_bn' with head 'flatten' takes only {INPUT_SHAPE[0]}x{INPUT_SHAPE[1]} images (it flattens its feature map), so it cannot train on crops")
    inputs = keras.Input(input_shape, name="input_layer")
    tensor = standardize_images(inputs) if standardize else inputs
    for stage, filters in enumerate(widths):
        for index in range(convs_per_stage):
            tensor = _conv_bn_relu(tensor, filters, f"stage{stage}_{index}")
        if stage < len(widths) - 1:
            tensor = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(tensor)
    if head == "average":
        tensor = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(tensor)
    else:
        tensor = keras.layers.Flatten(name="head_flatten")(tensor)
        tensor = keras.layers.Dropout(dropout, name="head_dropout")(tensor)
        tensor = keras.layers.Dense(dense_units, use_bias=False, name="head_dense")(tensor)
        tensor = keras.layers.BatchNormalization(name="head_bn")(tensor)
        tensor = keras.layers.ReLU(name="head_relu")(tensor)
    return keras.Model(inputs, _classifier(tensor, dropout), name="vgg_bn")


def resnet(widths=(32, 64, 128, 256), blocks_per_stage: int | list = 2, dropout: float = 0.3, input_shape=INPUT_SHAPE):
    """A small pre-activation-free ResNet: a stem conv, residual stages (stride-2 at each new
    stage, 1x1 projection shortcuts), global average pooling and dropout before the classifier.
    ``blocks_per_stage`` is one number for every stage or a list with one number per stage."""
    blocks = [blocks_per_stage] * len(widths) if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
    if len(blocks) != len(widths) or min(blocks) < 1:
        raise ValueError(f"resnet: blocks_per_stage must be a number >= 1 or one such number per stage ({len(widths)}), got {blocks_per_stage!r}")
    inputs = keras.Input(input_shape, name="input_layer")
    tensor = _conv_bn_relu(inputs, widths[0], "stem")
    for stage, filters in enumerate(widths):
        for block in range(blocks[stage]):
            strides = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage}_block{block}"
            shortcut = tensor
            tensor = keras.layers.Conv2D(filters, 3, strides, padding="same", use_bias=False, name=f"{name}_conv1")(tensor)
            tensor = keras.layers.BatchNormalization(name=f"{name}_bn1")(tensor)
            tensor = keras.layers.ReLU(name=f"{name}_relu1")(tensor)
            tensor = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(tensor)
            tensor = keras.layers.BatchNormalization(name=f"{name}_bn2")(tensor)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = _projection(shortcut, filters, strides, name)
                shortcut = keras.layers.BatchNormalization(name=f"{name}_project_bn")(shortcut)
            tensor = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([tensor, shortcut]))
    tensor = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(tensor)
    return keras.Model(inputs, _classifier(tensor, dropout), name="resnet")


def mini_xception(width: int = 8, block_widths=(16, 32, 64, 128), input_shape=INPUT_SHAPE):
    """mini-XCEPTION (Arriaga et al. 2017): two plain convs, four depthwise-separable residual
    blocks, and a convolutional classifier with global average pooling (about 58k parameters)."""
    inputs = keras.Input(input_shape, name="input_layer")
    tensor = _conv_bn_relu(inputs, width, "stem0")
    tensor = _conv_bn_relu(tensor, width, "stem1")
    for index, filters in enumerate(block_widths):
        name = f"block{index}"
        shortcut = _projection(tensor, filters, 2, name)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_project_bn")(shortcut)
        tensor = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sep1")(tensor)
        tensor = keras.layers.BatchNormalization(name=f"{name}_bn1")(tensor)
        tensor = keras.layers.ReLU(name=f"{name}_relu")(tensor)
        tensor = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sep2")(tensor)
        tensor = keras.layers.BatchNormalization(name=f"{name}_bn2")(tensor)
        tensor = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(tensor)
        tensor = keras.layers.Add(name=f"{name}_add")([tensor, shortcut])
    tensor = keras.layers.Conv2D(N_CLASSES, 3, padding="same", name="classifier")(tensor)
    tensor = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(tensor)
    outputs = keras.layers.Softmax(dtype="float32", name="softmax")(tensor)
    return keras.Model(inputs, outputs, name="mini_xception")


REGISTRY = {"seed": seed, "vgg_bn": vgg_bn, "resnet": resnet, "mini_xception": mini_xception}


# oneDNN's fast bfloat16 batch-norm kernels need the channel count to be a multiple of this.
BFLOAT16_CHANNEL_BLOCK = 16


@keras.saving.register_keras_serializable(package="emotionnet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (same weights, same function, same moving averages)
    whose training step runs as TensorFlow's fused batch-norm op: one kernel per layer and its
    gradient, in the layer's compute dtype (float32 for bfloat16 activations whose channel count
    is not a multiple of BFLOAT16_CHANNEL_BLOCK). Keras' own layer computes the batch moments and the
    normalisation as a dozen element-wise ops in float32, casting bfloat16 activations up and back,
    which took more time than the convolutions (bench/train_throughput.py, contender ``keras-bn``).
    Inference, and inputs the fused op does not take (masks, renorm, other axes, ranks other than
    2 and 4), use Keras' computation."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        shape = tf.shape(inputs)
        images = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
        channels = images.shape[-1]
        if images.dtype == tf.bfloat16 and channels % BFLOAT16_CHANNEL_BLOCK:
            # oneDNN (TensorFlow 2.21) runs bfloat16 batch norm over a channel count that is not a
            # multiple of 16 with its slow reference kernel (5-8x the time); float32 has a fast one
            images = tf.cast(images, tf.float32)
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        empty = tf.constant([], tf.float32)
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=images, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True
        )
        # The fused op returns the unbiased (n - 1) batch variance; Keras averages the biased one.
        count = tf.cast(tf.size(images) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(tf.reshape(outputs, shape), self.compute_dtype)

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and inputs.dtype in ("float32", "bfloat16", "float16")
        )


BATCH_NORMS = ("fused", "keras")


def has_fused_batch_norm(model: keras.Model) -> bool:
    return any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)


def with_batch_norm(model: keras.Model, batch_norm: str) -> keras.Model:
    """``model`` itself for ``"keras"`` or a model without batch norm; for ``"fused"`` a copy whose
    BatchNormalization layers are FusedBatchNormalization layers with the same configuration and
    names (fresh weights in the same order, so ``set_weights`` moves weights between the two)."""
    if batch_norm not in BATCH_NORMS:
        raise ValueError(f"unknown batch_norm {batch_norm!r} (use {' or '.join(map(repr, BATCH_NORMS))})")
    if batch_norm == "keras" or not any(type(layer) is keras.layers.BatchNormalization for layer in model.layers):
        return model

    def clone(layer):
        kind = FusedBatchNormalization if type(layer) is keras.layers.BatchNormalization else type(layer)
        return kind.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def build(architecture: str, input_shape=None, **hyperparameters) -> keras.Model:
    """Build a registered architecture by name, for 48x48 images unless ``input_shape`` says
    otherwise (only the global-pooling architectures take other sizes; (None, None, 1) takes any)."""
    if architecture not in REGISTRY:
        raise ValueError(f"unknown architecture {architecture!r}; registered: {', '.join(sorted(REGISTRY))}")
    parameters = inspect.signature(REGISTRY[architecture]).parameters
    accepted = [name for name in parameters if name != "input_shape"]
    unknown = sorted(set(hyperparameters) - set(accepted))
    if unknown:
        raise ValueError(f"architecture {architecture!r} has no hyperparameter {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")
    if input_shape is not None and tuple(input_shape) != INPUT_SHAPE:
        if "input_shape" not in parameters:
            raise ValueError(f"architecture {architecture!r} takes only {INPUT_SHAPE[0]}x{INPUT_SHAPE[1]} images (it flattens its feature map), so it cannot train on crops")
        hyperparameters["input_shape"] = tuple(input_shape)
    return REGISTRY[architecture](**hyperparameters)


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds per image of the model's Conv2D, SeparableConv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            height, width, out_channels = layer.output.shape[1:]
            in_channels = layer.input.shape[-1]
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total += height * width * in_channels * (kernel * layer.depth_multiplier + out_channels)
        elif isinstance(layer, keras.layers.Conv2D):
            height, width, out_channels = layer.output.shape[1:]
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total += height * width * out_channels * kernel * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


class UnsafeModelError(ValueError):
    """A model file that would run code from the file when loaded."""


def require_model_file(path):
    """Fail with a clear message unless ``path`` is an existing ``.keras`` (zip) file."""
    if Path(path).is_dir():
        raise ValueError(f"{path}: a folder, not a model file (a .keras file)")
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Keras model file (a .keras file is a zip archive saved by model.save)")


def load(path) -> keras.Model:
    """Load a ``.keras`` model in safe mode: files whose layers carry code (Lambda) are refused."""
    require_model_file(path)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise UnsafeModelError(f"{path}: refused to load: the model contains code (e.g. a Lambda layer), which safe mode does not execute") from None
        raise
