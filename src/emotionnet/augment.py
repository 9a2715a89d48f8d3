"""On-the-fly augmentation of whole batches, driven by stateless random seeds so that the same
(seed, epoch, batch) always gives the same augmented batch, also after a resumed training run.

All functions take float32 images (batch, 48, 48, 1) in [0, 1] and are never used at evaluation."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

DEFAULTS = {"flip": False, "translate": 0.0, "rotate": 0.0, "zoom": 0.0, "contrast": 0.0, "erase": 0.0}


_AUTO_SELECT = 3  # tf.random's "auto_select" random number algorithm


def _salted(seed, salt: int):
    """The seed of the draw numbered ``salt``."""
    return seed + [0, salt * 7919]


def _uniform(seed, shape, low, high, salt, dtype=tf.float32):
    """``tf.random.stateless_uniform(shape, seed + [0, 7919 salt], low, high, dtype)``: the same
    values, from the raw ops that function calls, in a third fewer graph ops. tf.data instantiates
    every op of the batch function whenever a pipeline starts an epoch, about 0.2 ms per op."""
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=_salted(seed, salt))
    if dtype.is_integer:
        return tf.raw_ops.StatelessRandomUniformIntV2(shape=shape, key=key, counter=counter, alg=_AUTO_SELECT, minval=tf.convert_to_tensor(low, dtype), maxval=tf.convert_to_tensor(high, dtype))
    values = tf.raw_ops.StatelessRandomUniformV2(shape=shape, key=key, counter=counter, alg=_AUTO_SELECT, dtype=dtype)
    if (low, high) == (0.0, 1.0):  # values * 1 + 0 is values
        return values
    return values * (np.float32(high) - np.float32(low)) + np.float32(low)


def _side(images):
    """The images' side, for float32 arithmetic: a Python number (a constant in the graph) when the
    static shape knows it, else a float32 tensor read from the batch (more ops to instantiate)."""
    known = images.shape[1]
    return float(known) if known is not None else tf.cast(tf.shape(images)[1], tf.float32)


def flip_mask(seed, batch_size):
    """Which images of a batch ``flip`` mirrors: a (batch_size,) bool tensor, each True with
    probability 1/2."""
    return _uniform(seed, [batch_size], 0.0, 1.0, 1) < 0.5


def flip(images, seed):
    """Mirror each image left-right with probability 1/2 (the images ``flip_mask`` picks)."""
    mirrored = tf.reshape(flip_mask(seed, tf.shape(images)[0]), [-1, 1, 1, 1])
    return tf.where(mirrored, tf.reverse(images, axis=[2]), images)


def affine(images, seed, translate: float, rotate: float, zoom: float):
    """Random shift (fraction of the side), rotation (fraction of a full turn) and zoom, with
    reflected borders, like Keras' RandomTranslation/RandomRotation/RandomZoom combined."""
    return warp(images, affine_transforms(seed, tf.shape(images)[0], _side(images), translate, rotate, zoom))


def affine_transforms(seed, batch, side, translate: float, rotate: float, zoom: float):
    """The (batch, 8) transforms ``affine`` warps ``batch`` images of ``side`` x ``side`` pixels by."""
    angle = _uniform(seed, [batch], -rotate, rotate, 2) * 2 * math.pi
    scale = 1.0 + _uniform(seed, [batch], -zoom, zoom, 3)
    shift_x = _uniform(seed, [batch], -translate, translate, 4) * side
    shift_y = _uniform(seed, [batch], -translate, translate, 5) * side
    centre = (side - 1) / 2
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    a2 = centre - cos * centre + sin * centre - shift_x
    b2 = centre - sin * centre - cos * centre - shift_y
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)


def _compiled(name: str, kernel, images, *arguments):
    """``kernel(images, *arguments)`` as an op of the batch function: a compiled, pure function
    (declared stateless) of a one-channel float32 batch that returns a batch of the same shape."""
    if images.shape[-1] != 1:
        raise ValueError(f"{name} takes one-channel images, got shape {images.shape}")
    output = tf.numpy_function(kernel, [images, *arguments], tf.float32, stateful=False)
    output.set_shape(images.shape)
    return output


def warp(images, transforms):
    """TensorFlow's ``ImageProjectiveTransformV3`` (bilinear, reflected borders) of one-channel
    ``images`` by ``transforms`` (batch, 8), computed by the compiled ``warp_kernel``: the same values for
    2.1x less CPU time (bench/augment_cost.py)."""
    from emotionnet import warp_kernel

    return _compiled("warp", warp_kernel.warp_bilinear_reflect, images, transforms)


def contrast(images, seed, strength: float):
    """Scale each image's contrast around its mean by a factor in [1 - strength, 1 + strength]."""
    factor = _uniform(seed, [tf.shape(images)[0], 1, 1, 1], 1 - strength, 1 + strength, 6)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value((images - mean) * factor + mean, 0.0, 1.0)


def erase(images, seed, probability: float, max_fraction: float = 0.4):
    """Random erasing: with ``probability``, fill a random rectangle (up to ``max_fraction`` of the
    side in each direction) with uniform noise. The noise is element (image, row, column) of a
    uniform draw of the batch's shape; the compiled ``erase_kernel`` computes only the elements
    that land inside the rectangles: the same values for 2.3x less CPU time (bench/augment_cost.py)."""
    from emotionnet import erase_kernel

    batch, side = tf.shape(images)[:1], _side(images)
    height = _uniform(seed, batch, 0.1, max_fraction, 7) * side
    width = _uniform(seed, batch, 0.1, max_fraction, 8) * side
    top = _uniform(seed, batch, 0.0, 1.0, 9) * (side - height)
    left = _uniform(seed, batch, 0.0, 1.0, 10) * (side - width)
    chosen = _uniform(seed, batch, 0.0, 1.0, 11) < probability
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=_salted(seed, 12))
    return _compiled("erase", erase_kernel.erase_rectangles, images, height, width, top, left, chosen, key, counter)


def random_crop(images, seed, size: int):
    """Cut a random ``size`` x ``size`` window (whole pixels, no interpolation) out of each image,
    by two gathers (the same values as a nearest-neighbour image transform, a little less CPU)."""
    batch = tf.shape(images)[0]
    room = tf.shape(images)[1] - size + 1
    left = _uniform(seed, [batch], 0, room, 14, tf.int32)
    top = _uniform(seed, [batch], 0, room, 15, tf.int32)
    offsets = tf.range(size)
    rows = tf.gather(images, top[:, None] + offsets, axis=1, batch_dims=1)
    return tf.gather(rows, left[:, None] + offsets, axis=2, batch_dims=1)


def augment_batch(images, seed, settings: dict):
    """Apply the augmentations switched on in ``settings`` (keys as in DEFAULTS)."""
    options = {**DEFAULTS, **settings}
    if options["flip"]:
        images = flip(images, seed)
    if options["translate"] or options["rotate"] or options["zoom"]:
        images = affine(images, seed, options["translate"], options["rotate"], options["zoom"])
    if options["contrast"]:
        images = contrast(images, seed, options["contrast"])
    if options["erase"]:
        images = erase(images, seed, options["erase"])
    return images


def mixup(images, one_hot, seed, alpha: float):
    """Mixup (Zhang et al. 2018): blend each example with a partner from the reversed batch."""
    batch = tf.shape(images)[0]
    seeds = seed + tf.constant([0, 13], tf.int64)
    gamma_a = tf.random.stateless_gamma([batch], seed=seeds, alpha=alpha)
    gamma_b = tf.random.stateless_gamma([batch], seed=seeds + 1, alpha=alpha)
    weight = gamma_a / (gamma_a + gamma_b)
    weight = tf.maximum(weight, 1 - weight)
    image_weight = tf.reshape(weight, [-1, 1, 1, 1])
    label_weight = tf.reshape(weight, [-1, 1])
    images = image_weight * images + (1 - image_weight) * tf.reverse(images, axis=[0])
    one_hot = label_weight * one_hot + (1 - label_weight) * tf.reverse(one_hot, axis=[0])
    return images, one_hot
