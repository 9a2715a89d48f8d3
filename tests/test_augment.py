"""Input pipeline and augmentation: batches, shapes, dtypes, determinism, and that augmentation is
off outside training."""

import pytest

import keras
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


def test_mixup_blends_images_and_labels_with_one_weight_per_example():
    classes = np.arange(16) % 7
    originals = _batch()
    images, labels = augment.mixup(originals, tf.one_hot(classes, 7), tf.constant([4, 5], tf.int64), 0.4)
    assert images.shape == (16, 48, 48, 1)
    np.testing.assert_allclose(tf.reduce_sum(labels, axis=1), 1.0, rtol=1e-6)
    differs = classes != classes[::-1]  # rows whose partner (the reversed batch) has another class
    weights = labels.numpy()[np.arange(16), classes][differs]
    assert (weights >= 0.5).all() and (weights < 0.99).any()  # each keeps most of itself; some really mix
    expected = weights[:, None, None, None] * originals.numpy()[differs] + (1 - weights[:, None, None, None]) * originals.numpy()[::-1][differs]
    np.testing.assert_allclose(images.numpy()[differs], expected, atol=1e-6)


def test_random_crop_cuts_whole_pixel_windows_at_varying_places():
    images = tf.reshape(tf.range(64 * 48 * 48, dtype=tf.float32), (64, 48, 48, 1))
    crops = augment.random_crop(images, tf.constant([3, 4], tf.int64), 40).numpy()
    assert crops.shape == (64, 40, 40, 1)
    offsets = []
    for image, crop in zip(images.numpy(), crops, strict=True):
        top, left = divmod(int(crop[0, 0, 0] - image[0, 0, 0]), 48)
        np.testing.assert_array_equal(crop, image[top : top + 40, left : left + 40])
        offsets.append((top, left))
    tops, lefts = zip(*offsets, strict=True)
    assert set(tops) == set(lefts) == set(range(9))  # every offset 0..8 occurs, in both directions
    assert tops != lefts  # drawn independently
    np.testing.assert_array_equal(crops, augment.random_crop(images, tf.constant([3, 4], tf.int64), 40))


def test_crops_are_for_training_batches_only():
    images = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    training = next(iter(train.make_dataset(images, np.zeros(10, np.int64), 10, seed=1, augment=ALL_ON, crop=40)))
    validation = next(iter(train.make_dataset(images, np.zeros(10, np.int64), 10, crop=40)))
    assert training[0].shape == (10, 40, 40, 1)
    np.testing.assert_allclose(validation[0][..., 0], images / 255.0, rtol=1e-6)


def test_unshuffled_dataset_is_not_augmented():
    images = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    batches = list(train.make_dataset(images, np.zeros(10, np.int64), 10, augment=ALL_ON, mixup_alpha=0.4))
    np.testing.assert_allclose(batches[0][0][..., 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(batches[0][1], np.eye(7)[np.zeros(10, int)])  # labels not mixed


def test_tta_keeps_the_class_of_a_symmetric_face():
    keras.utils.set_random_seed(5)  # unseeded, about 1 in 7 initialisations changed the asymmetric face by under 1e-4
    model = models.build("vgg_bn", widths=(8, 16), dropout=0.0)
    image = np.random.default_rng(1).integers(0, 256, (1, 48, 24), dtype=np.uint8)
    symmetric = np.concatenate([image, image[:, :, ::-1]], axis=2)
    plain = evaluate.predict_probabilities(model, symmetric)
    with_tta = evaluate.predict_probabilities(model, symmetric, tta=True)
    assert plain.argmax() == with_tta.argmax()
    np.testing.assert_allclose(plain, with_tta, atol=1e-5)
    asymmetric = np.concatenate([image, np.zeros_like(image)], axis=2)  # TTA is on: it changes this one
    assert np.abs(evaluate.predict_probabilities(model, asymmetric) - evaluate.predict_probabilities(model, asymmetric, tta=True)).max() > 1e-4


def _batches_of_shuffled_images(images, labels, batch_size, seed, epoch):
    """The straightforward pipeline: shuffle the images themselves, then batch them."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    dataset = dataset.shuffle(len(images), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
    return [(batch_images.numpy() / np.float32(255.0), batch_labels.numpy()) for batch_images, batch_labels in dataset.batch(batch_size)]


@pytest.mark.parametrize(("rows", "batch_size", "seed", "epoch"), [(50, 8, 1, 0), (50, 8, 1, 3), (37, 16, 5, 1), (7, 64, 2, 0)])
def test_batches_equal_those_of_shuffling_the_images_themselves(rows, batch_size, seed, epoch):
    generator = np.random.default_rng(rows)
    images = generator.integers(0, 256, (rows, 48, 48), dtype=np.uint8)
    labels = generator.integers(0, 7, rows)
    expected = _batches_of_shuffled_images(images, labels, batch_size, seed, epoch)
    batches = list(train.make_dataset(images, labels, batch_size, seed=seed, epoch=epoch))
    assert len(batches) == len(expected)
    for (batch_images, one_hot), (expected_images, expected_labels) in zip(batches, expected):
        assert batch_images.dtype == tf.float32 and batch_images.shape == (*expected_images.shape, 1)
        np.testing.assert_array_equal(batch_images.numpy()[..., 0], expected_images)
        np.testing.assert_array_equal(one_hot.numpy().argmax(axis=1), expected_labels)


def test_another_epoch_gives_another_order():
    images = np.arange(40, dtype=np.uint8).repeat(48 * 48).reshape(40, 48, 48)
    first = [float(batch[0, 0, 0, 0]) for batch, _ in train.make_dataset(images, np.zeros(40, np.int64), 1, seed=3, epoch=0)]
    second = [float(batch[0, 0, 0, 0]) for batch, _ in train.make_dataset(images, np.zeros(40, np.int64), 1, seed=3, epoch=1)]
    assert sorted(first) == sorted(second) and first != second


def _augmented_cropped_mixed(images, targets, batch_seed, settings, crop, mixup_alpha):
    """What a training batch must be: augment the whole 48x48 images, cut the crops out of them,
    then mix the crops and their targets."""
    images = augment.augment_batch(images, batch_seed, settings)
    if crop:
        images = augment.random_crop(images, batch_seed, crop)
    if mixup_alpha > 0:
        images, targets = augment.mixup(images, targets, batch_seed, mixup_alpha)
    return images, targets


@pytest.mark.parametrize(
    ("settings", "crop", "mixup_alpha"),
    [(ALL_ON, None, 0.0), ({"flip": True}, None, 0.0), ({"flip": False, "contrast": 0.3}, None, 0.0), (ALL_ON, 40, 0.4)],
    ids=["all_on", "flip", "contrast", "all_on_crop_mixup"],
)
def test_augmented_batches_equal_augmenting_the_shuffled_batches(settings, crop, mixup_alpha):
    """The pipeline mirrors by gathering from a mirrored copy; that must equal augment_batch. With
    crop and mixup, it augments, then crops, then mixes (images and targets)."""
    generator = np.random.default_rng(3)
    images = generator.integers(0, 256, (45, 48, 48), dtype=np.uint8)
    labels = generator.integers(0, 7, 45)
    plain = _batches_of_shuffled_images(images, labels, 16, seed=2, epoch=1)
    batches = list(train.make_dataset(images, labels, 16, seed=2, epoch=1, augment=settings, crop=crop, mixup_alpha=mixup_alpha))
    assert len(batches) == len(plain) == 3
    for index, ((batch_images, batch_targets), (plain_images, plain_labels)) in enumerate(zip(batches, plain)):
        batch_seed = tf.constant([2 * 1_000 + 1, index], tf.int64)
        # in a tf.data map, like the pipeline: eager ops round a few pixels differently (7e-6)
        inputs = tf.data.Dataset.from_tensors((plain_images[..., None], train.one_hot(plain_labels), batch_seed))
        expected, expected_targets = next(iter(inputs.map(lambda batch, targets, batch_seed: _augmented_cropped_mixed(batch, targets, batch_seed, settings, crop, mixup_alpha))))
        np.testing.assert_array_equal(batch_images.numpy(), expected.numpy())
        np.testing.assert_array_equal(batch_targets.numpy(), expected_targets.numpy())
    if mixup_alpha:
        assert (batch_targets.numpy().max(axis=1) < 0.99).any()  # the targets really were mixed
    if settings.get("flip") and not crop:
        assert any(not np.array_equal(batch.numpy()[..., 0], expected) for (batch, _), (expected, _) in zip(batches, plain))


SEED = tf.constant([7, 8], tf.int64)


def _blob(row, col, count=256):
    """``count`` copies of a black image with a white 2x2 square whose centre is (row - 0.5, col - 0.5)."""
    images = np.zeros((count, 48, 48, 1), np.float32)
    images[:, row - 1 : row + 1, col - 1 : col + 1] = 1.0
    return tf.constant(images)


def _centroids(images):
    """(rows, columns) of each image's brightness centroid."""
    images = images.numpy()[..., 0]
    rows, columns = np.mgrid[:48, :48]
    mass = images.sum(axis=(1, 2))
    return (images * rows).sum(axis=(1, 2)) / mass, (images * columns).sum(axis=(1, 2)) / mass


def test_erase_probability_is_the_share_of_erased_images():
    images = tf.zeros((64, 48, 48, 1))
    np.testing.assert_array_equal(augment.erase(images, SEED, 0.0).numpy(), images.numpy())
    assert (augment.erase(images, SEED, 1.0).numpy().reshape(64, -1).max(axis=1) > 0).all()


def test_erased_rectangles_span_10_to_40_percent_of_each_side():
    erased = augment.erase(tf.zeros((64, 48, 48, 1)), SEED, 1.0).numpy()[..., 0] > 0
    heights, widths = erased.any(axis=2).sum(axis=1), erased.any(axis=1).sum(axis=1)
    assert heights.max() <= 20 and widths.max() <= 20  # 0.4 x 48 = 19.2 rows, started mid-pixel
    assert heights.min() >= 4 and widths.min() >= 4  # 0.1 x 48 = 4.8


def test_rotate_is_a_fraction_of_a_full_turn():
    """rotate 0.1 turns by up to 36 degrees either way."""
    rows, columns = _centroids(augment.affine(_blob(24, 40), SEED, 0.0, 0.1, 0.0))
    angles = np.degrees(np.abs(np.arctan2(rows - 23.5, columns - 23.5)))
    assert 30 < angles.max() <= 36.5


def test_each_affine_setting_works_on_its_own():
    images = _batch()
    for setting in ({"zoom": 0.2}, {"rotate": 0.05}, {"translate": 0.1}):
        assert not np.allclose(augment.augment_batch(images, SEED, setting), images), setting


def test_horizontal_and_vertical_shifts_are_drawn_independently():
    rows, columns = _centroids(augment.affine(_blob(24, 24), SEED, 0.2, 0.0, 0.0))
    assert rows.std() > 2 and columns.std() > 2
    assert abs(np.corrcoef(rows, columns)[0, 1]) < 0.5


def _tensorflow_transform(images, transforms, interpolation="BILINEAR", fill_mode="REFLECT", output_shape=None):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=output_shape or images.shape[1:3], fill_value=0.0, interpolation=interpolation, fill_mode=fill_mode
    ).numpy()


def _transforms(generator, count, kind):
    """Affine transforms like augment.affine's, with ranges up to far outside the image, or
    projective ones (whose projection can pass through zero)."""
    if kind == "projective":
        return generator.normal(0, 3, (count, 8)).astype(np.float32) * np.array([1, 1, 10, 1, 1, 10, 0.05, 0.05], np.float32)
    reach = {"training": 1, "wide": 5, "far": 60}[kind]
    angle = generator.uniform(-0.05, 0.05, count) * reach * 2 * np.pi
    scale = 1 + generator.uniform(-0.1, 0.1, count) * min(reach, 5)
    shift = generator.uniform(-0.1, 0.1, (2, count)) * reach * 48
    cos, sin, centre = np.cos(angle) * scale, np.sin(angle) * scale, 23.5
    zeros = np.zeros(count)
    return np.stack([cos, -sin, centre - cos * centre + sin * centre - shift[0], sin, cos, centre - sin * centre - cos * centre - shift[1], zeros, zeros], 1).astype(np.float32)


@pytest.mark.parametrize("kind", ["training", "wide", "far", "projective"])
@pytest.mark.parametrize("shape", [(64, 48, 48), (8, 5, 9), (4, 1, 1)], ids=["48x48", "5x9", "1x1"])
def test_compiled_warp_equals_tensorflows_image_transform_bit_for_bit(kind, shape):
    """augment.warp replaced ImageProjectiveTransformV3 (bilinear, reflected borders) without
    changing a single value, so trained results stay as they were."""
    generator = np.random.default_rng(len(kind) * 100 + shape[1])
    images = generator.random((*shape, 1), dtype=np.float32)
    transforms = _transforms(generator, shape[0], kind)
    expected = _tensorflow_transform(images, transforms)
    warped = tf.function(augment.warp)(tf.constant(images), tf.constant(transforms)).numpy()
    assert warped.shape == images.shape
    np.testing.assert_array_equal(warped.view(np.uint32), expected.view(np.uint32))
    if shape[1] > 1:  # a 1x1 image reflects onto itself
        assert not np.array_equal(warped, images)


@pytest.mark.parametrize(("shape", "low", "high", "dtype"), [([128], -0.04, 0.04, tf.float32), ([64, 1, 1, 1], 0.1, 0.4, tf.float32), ([9, 5, 3], 0.0, 1.0, tf.float32), ([40], 0, 9, tf.int32)])
def test_uniform_draws_what_tf_random_stateless_uniform_draws(shape, low, high, dtype):
    seed = tf.constant([123, 45], tf.int64)
    expected = tf.random.stateless_uniform(shape, seed=seed + [0, 7 * 7919], minval=low, maxval=high, dtype=dtype).numpy()
    drawn = tf.function(lambda: augment._uniform(seed, shape, low, high, 7, dtype))().numpy()
    assert drawn.shape == tuple(shape) and drawn.dtype == expected.dtype
    np.testing.assert_array_equal(drawn.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("counter", [(0, 0), (2**64 - 3, 7), (2**64 - 1, 2**64 - 1)], ids=["zero", "carry", "wraps"])
def test_compiled_philox_gives_tensorflows_uniform_numbers(counter):
    from emotionnet import erase_kernel

    key, counter = np.array([0x0123456789ABCDEF], np.uint64), np.array(counter, np.uint64)
    expected = tf.raw_ops.StatelessRandomUniformV2(shape=[4 * 20], key=key, counter=counter, alg=1, dtype=tf.float32).numpy()
    computed = np.array([erase_kernel.uniform_float(erase_kernel.philox_words(key, counter, element // 4)[element % 4]) for element in range(80)], np.float32)
    np.testing.assert_array_equal(computed.view(np.uint32), expected.view(np.uint32))


def _tensorflow_erase(images, seed, probability, max_fraction=0.4):
    """Random erasing as augment.erase did it before its compiled kernel: noise for every pixel."""

    def uniform(shape, low, high, salt):
        return tf.random.stateless_uniform(shape, seed=seed + tf.constant([0, salt], tf.int64) * 7919, minval=low, maxval=high)

    batch, side = tf.shape(images)[0], tf.cast(tf.shape(images)[1], tf.float32)
    height = uniform([batch, 1, 1, 1], 0.1, max_fraction, 7) * side
    width = uniform([batch, 1, 1, 1], 0.1, max_fraction, 8) * side
    top = uniform([batch, 1, 1, 1], 0.0, 1.0, 9) * (side - height)
    left = uniform([batch, 1, 1, 1], 0.0, 1.0, 10) * (side - width)
    rows, columns = tf.reshape(tf.range(side), [1, -1, 1, 1]), tf.reshape(tf.range(side), [1, 1, -1, 1])
    inside = (rows >= top) & (rows < top + height) & (columns >= left) & (columns < left + width)
    chosen = uniform([batch, 1, 1, 1], 0.0, 1.0, 11) < probability
    return tf.where(inside & chosen, uniform(tf.shape(images), 0.0, 1.0, 12), images).numpy()


@pytest.mark.parametrize(("shape", "probability", "max_fraction"), [((128, 48, 48), 0.25, 0.4), ((64, 48, 48), 1.0, 0.9), ((5, 7, 7), 1.0, 0.4), ((16, 48, 48), 0.0, 0.4)])
def test_compiled_erase_equals_noise_drawn_for_every_pixel_bit_for_bit(shape, probability, max_fraction):
    images = tf.constant(np.random.default_rng(shape[0]).random((*shape, 1), dtype=np.float32))
    for seed in ([3, 4], [1000, 17]):
        seed = tf.constant(seed, tf.int64)
        expected = _tensorflow_erase(images, seed, probability, max_fraction)
        erased = tf.function(augment.erase)(images, seed, probability, max_fraction).numpy()
        np.testing.assert_array_equal(erased.view(np.uint32), expected.view(np.uint32))
        assert (erased != images.numpy()).any() == (probability > 0)


def test_erase_refuses_images_with_more_than_one_channel():
    with pytest.raises(ValueError, match="one-channel"):
        augment.erase(tf.zeros((2, 48, 48, 3)), tf.constant([0, 0], tf.int64), 0.5)


def test_warp_refuses_images_with_more_than_one_channel():
    with pytest.raises(ValueError, match="one-channel"):
        augment.warp(tf.zeros((2, 48, 48, 3)), tf.zeros((2, 8)))


def test_random_crop_equals_the_nearest_neighbour_transform_it_replaced():
    images = _batch(5)
    batch_seed = tf.constant([9, 2], tf.int64)
    left = augment._uniform(batch_seed, [16], 0, 9, 14, tf.int32).numpy().astype(np.float32)
    top = augment._uniform(batch_seed, [16], 0, 9, 15, tf.int32).numpy().astype(np.float32)
    ones, zeros = np.ones(16, np.float32), np.zeros(16, np.float32)
    transforms = np.stack([ones, zeros, left, zeros, ones, top, zeros, zeros], axis=1)
    expected = _tensorflow_transform(images, transforms, "NEAREST", "CONSTANT", [40, 40])
    np.testing.assert_array_equal(augment.random_crop(images, batch_seed, 40).numpy(), expected)


def test_later_epochs_reuse_the_traced_batch_function_and_equal_a_fresh_pipeline():
    """A training run keeps one PipelineImages; each epoch's pipeline reuses the batch function
    traced for the first (tracing the augmentation every epoch cost about 0.1 s), also after the
    mirrored copy is added for a pipeline with the flip augmentation."""
    generator = np.random.default_rng(4)
    images = generator.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    labels = generator.integers(0, 7, 40)
    pipeline_images = train.PipelineImages(images, labels)
    no_flip = {key: value for key, value in ALL_ON.items() if key != "flip"}
    for epoch, settings in enumerate([no_flip, ALL_ON, ALL_ON, no_flip, ALL_ON]):
        batches = list(pipeline_images.batches(16, seed=3, epoch=epoch, augment=settings, crop=40))
        fresh = list(train.make_dataset(images, labels, 16, seed=3, epoch=epoch, augment=settings, crop=40))
        for (batch_images, batch_targets), (fresh_images, fresh_targets) in zip(batches, fresh, strict=True):
            np.testing.assert_array_equal(batch_images.numpy(), fresh_images.numpy())
            np.testing.assert_array_equal(batch_targets.numpy(), fresh_targets.numpy())
    functions = pipeline_images._prepare_functions
    assert len(functions) == 2  # one per settings since the mirrored copy was added
    assert [function.experimental_get_tracing_count() for function in functions.values()] == [1, 1]


def _images_and_labels(count: int):
    generator = np.random.default_rng(count)
    return generator.integers(0, 256, (count, 48, 48), dtype=np.uint8), generator.integers(0, 7, count)


def test_hide_length_gives_the_same_batches_and_their_number_and_refuses_an_endless_dataset():
    dataset = train.make_dataset(*_images_and_labels(40), 16, seed=3, augment=ALL_ON)
    hidden, steps = train.hide_length(dataset)
    assert steps == 3 and int(hidden.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    for (images, targets), (hidden_images, hidden_targets) in zip(dataset, hidden, strict=True):
        np.testing.assert_array_equal(images.numpy(), hidden_images.numpy())
        np.testing.assert_array_equal(targets.numpy(), hidden_targets.numpy())
    with pytest.raises(ValueError, match="known length, got cardinality -1"):
        train.hide_length(dataset.repeat())


def test_a_training_epoch_makes_one_iterator_over_each_dataset(monkeypatch):
    """Keras, knowing a dataset's length, makes the next epoch's iterator as soon as an epoch ends
    (thrown away after a fit of one epoch); training's fit makes one over its training batches and
    one over its validation batches per epoch, and every batch is trained on."""
    from tensorflow.python.data.ops import iterator_ops

    made, make = [], iterator_ops.OwnedIterator.__init__

    def counted(self, dataset=None, *arguments, **keywords):
        if dataset is not None:  # None: an iterator passed into a tf.function, not a new one
            made.append(dataset)
        make(self, dataset, *arguments, **keywords)

    monkeypatch.setattr(iterator_ops.OwnedIterator, "__init__", counted)
    images, labels = _images_and_labels(40)
    settings = {**train.DEFAULTS, "architecture": "vgg_bn", "hyperparameters": {"widths": [4, 8], "convs_per_stage": 1}, "batch_size": 16}
    model = train.build_compiled_model(settings, steps_per_epoch=3)
    pipeline_images = train.PipelineImages(images, labels)
    validation = train.make_dataset(images[:20], labels[:20], 8)
    for epoch in range(2):
        made.clear()
        train._fit_epoch(model, pipeline_images.batches(16, seed=1, epoch=epoch, augment=ALL_ON), validation, epoch, None, None)
        assert len(made) == 2
    assert int(model.optimizer.iterations) == 6
