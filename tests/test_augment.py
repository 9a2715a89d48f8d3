"""Augmentation: shapes, dtypes, determinism, and that it is off outside training."""

import numpy as np
import tensorflow as tf

from emotionnet import augment, evaluate, models, train

ALL_ON = {"flip": True, "translate": 0.1, "rotate": 0.05, "zoom": 0.1, "contrast": 0.3, "erase": 0.5}


def _batch(seed=0):
    return tf.constant(np.random.default_rng(seed).random((16, 48, 48, 1), dtype=np.float32))


def test_keeps_shape_dtype_and_range():
    out = augment.augment_batch(_batch(), tf.constant([1, 2], tf.int64), ALL_ON)
    assert out.shape == (16, 48, 48, 1) and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 1


def test_same_seed_same_batch_other_seed_other_batch():
    first = augment.augment_batch(_batch(), tf.constant([1, 2], tf.int64), ALL_ON)
    again = augment.augment_batch(_batch(), tf.constant([1, 2], tf.int64), ALL_ON)
    other = augment.augment_batch(_batch(), tf.constant([1, 3], tf.int64), ALL_ON)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_zero_strength_affine_is_identity():
    images = _batch()
    out = augment.affine(images, tf.constant([0, 0], tf.int64), 0.0, 0.0, 0.0)
    np.testing.assert_allclose(out, images, atol=1e-6)


def test_mixup_keeps_label_mass():
    one_hot = tf.one_hot(np.arange(16) % 7, 7)
    images, labels = augment.mixup(_batch(), one_hot, tf.constant([4, 5], tf.int64), 0.4)
    assert images.shape == (16, 48, 48, 1)
    np.testing.assert_allclose(tf.reduce_sum(labels, axis=1), 1.0, rtol=1e-6)


def test_unshuffled_dataset_is_not_augmented():
    images = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    batches = list(train.make_dataset(images, np.zeros(10, np.int64), 10, augment=ALL_ON))
    np.testing.assert_allclose(batches[0][0][..., 0], images / 255.0, rtol=1e-6)


def test_tta_keeps_the_class_of_a_symmetric_face():
    model = models.build("vgg_bn", widths=(8, 16), dropout=0.0)
    image = np.random.default_rng(1).integers(0, 256, (1, 48, 24), dtype=np.uint8)
    symmetric = np.concatenate([image, image[:, :, ::-1]], axis=2)
    plain = evaluate.predict_probabilities(model, symmetric)
    with_tta = evaluate.predict_probabilities(model, symmetric, tta=True)
    assert plain.argmax() == with_tta.argmax()
    np.testing.assert_allclose(plain, with_tta, atol=1e-5)
