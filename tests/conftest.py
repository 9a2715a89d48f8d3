"""Shared fixtures: small FER2013-format CSV texts and files."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_CSV = REPO.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"


def csv_text(images, labels, usage=None, *, newline="\n", header="emotion,pixels,Usage"):
    """FER2013 CSV text for (n, 48, 48) images."""
    lines = [header]
    for index, image in enumerate(images):
        pixels = " ".join(str(value) for value in image.ravel())
        fields = [str(labels[index]), pixels] + ([usage[index]] if usage is not None else [])
        lines.append(",".join(fields))
    return newline.join(lines) + newline


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def learnable_images(count: int, seed: int = 0):
    """(uint8 images, labels) whose brightness follows the label: a few steps of any model learn it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, count)
    return (rng.random((count, 48, 48)) * 60 + labels[:, None, None] * 25).astype(np.uint8), labels


def assert_loss_fell(losses, below: float):
    """The last loss is under ``below`` times the first. Dropout, crops and flips make the loss of a
    model that does not learn at all wobble by a few percent, so a bare ``last < first`` would pass
    with a learning rate of zero."""
    assert losses[-1] < below * losses[0], f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, not below {below} x the first"


@pytest.fixture
def small_dataset(rng):
    """Random images, labels and Usage values of 60 rows."""
    images = rng.integers(0, 256, size=(60, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, size=60)
    usage = rng.choice(["Training", "PublicTest", "PrivateTest"], size=60, p=[0.6, 0.2, 0.2])
    return images, labels, usage


@pytest.fixture
def write_csv(tmp_path):
    """Write text (or bytes) to a CSV file in the test's temp dir and return its path."""

    def write(content, name="data.csv"):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return write


def require_dev_csv():
    """The real development CSV; skip without it, except in CI where it must be there."""
    if DEV_CSV.exists():
        return DEV_CSV
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the FER2013 development CSV is missing: {DEV_CSV}")
    pytest.skip(f"FER2013 development CSV not found at {DEV_CSV}")
