"""Distillation: a model trained toward the mean probabilities of teacher models (config keys
``teacher`` and ``distillation``; rule teacher_probabilities)."""

import numpy as np
import pytest

from conftest import learnable_images
from emotionnet import evaluate, train


def _distributions(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random((count, 7)).astype(np.float32)
    return values / values.sum(axis=1, keepdims=True)


def test_soft_targets_follow_their_images_through_shuffling_and_mirroring():
    count = 45
    images = np.zeros((count, 48, 48), np.uint8)
    images[:, :, :24] = np.arange(count)[:, None, None]  # image i: left half i, right half 255 - i
    images[:, :, 24:] = 255 - np.arange(count)[:, None, None]
    targets = _distributions(count)
    dataset = train.make_dataset(images, np.zeros(count, np.int64), 16, seed=2, epoch=1, augment={"flip": True}, targets=targets)
    seen, mirrored = [], []
    for batch_images, batch_targets in dataset:
        pixels = np.rint(batch_images.numpy()[..., 0] * 255).astype(int)
        flipped = pixels[:, 0, 0] > 127  # a mirrored image has its right half on the left
        rows = np.where(flipped, 255 - pixels[:, 0, 0], pixels[:, 0, 0])
        np.testing.assert_array_equal(pixels[:, 0, 47], np.where(flipped, rows, 255 - rows))
        np.testing.assert_array_equal(batch_targets.numpy(), targets[rows])
        seen.extend(rows)
        mirrored.extend(flipped)
    assert sorted(seen) == list(range(count)) and seen != sorted(seen)
    assert 0 < sum(mirrored) < count  # some images were mirrored, some not


def test_without_targets_the_pipeline_gives_one_hot_labels():
    images, labels = learnable_images(20)
    (_, one_hot), = list(train.make_dataset(images, labels, 20))
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(7, dtype=np.float32)[labels])


def test_distillation_targets_blend_teacher_and_labels():
    labels = np.array([0, 3, 6])
    teacher = _distributions(3)
    assert train.distillation_targets(labels, teacher, 0.0) is None
    blended = train.distillation_targets(labels, teacher, 0.7)
    np.testing.assert_allclose(blended, 0.7 * teacher + 0.3 * np.eye(7)[labels], atol=1e-6)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="all 3 training images; got 2 rows"):
        train.distillation_targets(labels, teacher[:2], 0.7)
    with pytest.raises(ValueError, match="got none"):
        train.distillation_targets(labels, None, 0.7)


def test_teacher_probabilities_are_the_members_mean(tmp_path):
    first, second = _distributions(5, seed=1), _distributions(5, seed=2)
    np.save(tmp_path / "a.npy", first)
    np.save(tmp_path / "b.npy", second)
    np.testing.assert_allclose(train.teacher_probabilities([tmp_path / "a.npy", tmp_path / "b.npy"]), (first + second) / 2, atol=1e-7)
    assert train.teacher_probabilities([]) is None
    np.save(tmp_path / "short.npy", first[:4])
    with pytest.raises(ValueError, match=r"differ in shape: .*a\.npy \(5, 7\), .*short\.npy \(4, 7\)"):
        train.teacher_probabilities([tmp_path / "a.npy", tmp_path / "short.npy"])


def test_a_distilled_model_learns_the_teachers_answers_not_the_labels(tmp_path):
    """With distillation 1 and a teacher that always names the next class, the model must learn
    the teacher's mapping; a checkpoint of a run without the teacher is not resumed."""
    images, labels = learnable_images(256)
    teacher_classes = (labels + 1) % 7
    settings = {"architecture": "seed", "epochs": 6, "batch_size": 32, "learning_rate": 3e-3, "teacher": ["a"], "distillation": 1.0}
    # validated against the teacher's classes, so that the kept epoch is the one that learnt them
    model, _ = train.train(images, labels, images[:32], teacher_classes[:32], settings=settings, seed=0, checkpoint_dir=tmp_path / "distilled", teacher_probabilities=np.eye(7, dtype=np.float32)[teacher_classes])
    predicted = evaluate.predict_probabilities(model, images).argmax(axis=1)
    # (trained on the labels instead, the same run names 57% of the labels and none of the teacher's classes)
    assert (predicted == teacher_classes).mean() > 0.6 and (predicted == labels).mean() < 0.2
    plain = train.fingerprint(settings, 0, labels, labels[:32])
    assert plain != train.fingerprint(settings, 0, labels, labels[:32], np.eye(7, dtype=np.float32)[teacher_classes])
