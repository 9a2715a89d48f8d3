"""The embedded synthetic dataset: format, determinism, balance, label noise."""

import numpy as np

from emotionnet import data, synthetic


def test_shapes_types_and_splits():
    images, labels, usage = synthetic.generate(700, seed=1)
    assert images.shape == (700, 48, 48) and images.dtype == np.uint8
    assert labels.dtype == np.int8 and set(labels) == set(range(7))
    assert {name: (usage == name).sum() for name in data.USAGE_TO_SPLIT} == {"Training": 560, "PublicTest": 70, "PrivateTest": 70}
    assert images.std() > 20  # not blank


def test_same_seed_gives_byte_identical_csv(tmp_path):
    paths = []
    for name in ("a.csv", "b.csv"):
        synthetic.write_csv(tmp_path / name, *synthetic.generate(300, seed=7, label_noise=0.1))
        paths.append(tmp_path / name)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    synthetic.write_csv(tmp_path / "c.csv", *synthetic.generate(300, seed=8))
    assert (tmp_path / "c.csv").read_bytes() != paths[0].read_bytes()


def test_csv_round_trips_through_the_parser(tmp_path):
    images, labels, usage = synthetic.generate(140, seed=3)
    synthetic.write_csv(tmp_path / "s.csv", images, labels, usage)
    parsed = data.parse_csv(tmp_path / "s.csv")
    order = np.argsort([list(data.USAGE_TO_SPLIT).index(name) for name in usage], kind="stable")
    np.testing.assert_array_equal(parsed.images, images[order])
    np.testing.assert_array_equal(parsed.labels, labels[order])


def test_class_weights_and_label_noise():
    _, balanced, _ = synthetic.generate(3500, seed=2)
    assert np.bincount(balanced).min() > 400
    weights = [1, 0, 0, 0, 0, 0, 3]
    _, skewed, _ = synthetic.generate(2000, seed=2, class_weights=weights)
    counts = np.bincount(skewed, minlength=7)
    assert counts[1:6].sum() == 0 and 2.5 < counts[6] / counts[0] < 3.5
    _, noisy, _ = synthetic.generate(2000, seed=2, class_weights=weights, label_noise=0.3)
    changed = np.isin(noisy, [1, 2, 3, 4, 5]).mean()
    assert 0.18 < changed < 0.3  # 30% replaced, 5/6 of them by a class that was absent


def test_full_label_noise_changes_every_label():
    _, clean, _ = synthetic.generate(300, seed=4)
    _, noisy, _ = synthetic.generate(300, seed=4, label_noise=1.0)
    assert (noisy != clean).all()


def test_split_fractions_are_relative_weights():
    _, _, usage = synthetic.generate(100, seed=0, split_fractions={"train": 8, "val": 1, "test": 1})
    assert {name: int((usage == name).sum()) for name in data.USAGE_TO_SPLIT} == {"Training": 80, "PublicTest": 10, "PrivateTest": 10}
