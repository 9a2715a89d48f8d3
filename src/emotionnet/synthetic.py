"""Procedurally drawn 48x48 grayscale faces in FER2013's CSV format: the embedded default dataset.

Each expression is carried by facial geometry: mouth curve, width and opening, eyebrow angle and
height, eye openness and a wrinkled nose. Every parameter is the class's typical value plus noise,
so neighbouring classes overlap; pose, scale, position, lighting, blur and sensor noise vary freely.
The same seed and settings give a byte-identical CSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionnet import data

# Typical geometry per class, in FER2013 label order. Columns: mouth curve (+ = corners up),
# mouth half-width, mouth opening, brow height, brow tilt (+ = inner ends raised), eye openness,
# nose wrinkle strength.
CLASS_GEOMETRY = np.array(
    [
        [-0.04, 0.22, 0.00, -0.06, -0.55, 0.65, 0.0],  # Angry: lowered, V-shaped brows, narrowed eyes
        [-0.06, 0.24, 0.03, -0.04, -0.30, 0.60, 1.0],  # Disgust: wrinkled nose, raised upper lip
        [-0.02, 0.30, 0.09, 0.10, 0.45, 1.45, 0.0],  # Fear: raised inner brows, wide eyes, stretched mouth
        [0.12, 0.31, 0.04, 0.00, 0.00, 0.80, 0.0],  # Happy: smile
        [-0.10, 0.23, 0.00, 0.02, 0.50, 0.75, 0.0],  # Sad: corners down, inner brows up
        [0.00, 0.14, 0.20, 0.16, 0.10, 1.55, 0.0],  # Surprise: high brows, wide eyes, round open mouth
        [0.00, 0.24, 0.00, 0.00, 0.00, 1.00, 0.0],  # Neutral
    ]
)
GEOMETRY_NOISE = np.array([0.045, 0.035, 0.035, 0.05, 0.22, 0.22, 0.35])


def _sample_parameters(rng, labels, variation):
    """Per-image geometry (n, 7): class typical values plus Gaussian noise scaled by ``variation``."""
    noise = rng.normal(size=(len(labels), CLASS_GEOMETRY.shape[1])) * GEOMETRY_NOISE * variation
    geometry = CLASS_GEOMETRY[labels] + noise
    geometry[:, 1] = np.clip(geometry[:, 1], 0.08, 0.4)
    geometry[:, 2] = np.clip(geometry[:, 2], 0.0, 0.3)
    geometry[:, 5] = np.clip(geometry[:, 5], 0.2, 2.0)
    geometry[:, 6] = np.clip(geometry[:, 6], 0.0, 1.5)
    return geometry


def _smooth_inside(distance, softness=0.03):
    """1 inside a shape (negative distance), 0 outside, with an anti-aliased edge."""
    return np.clip(0.5 - distance / softness, 0.0, 1.0)


def _segment_distance(u, v, x0, y0, x1, y1):
    """Distance from points (u, v) to the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(u - x0 - t * dx, v - y0 - t * dy)


def _face_coordinates(rng, count):
    """Image grid mapped into each face's own frame (random rotation, scale and shift)."""
    axis = (np.arange(data.IMAGE_SIDE) + 0.5) / data.IMAGE_SIDE * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    angle = rng.normal(0, 0.15, (count, 1, 1))
    scale = rng.uniform(0.8, 1.1, (count, 1, 1))
    shift_x, shift_y = rng.uniform(-0.1, 0.1, (2, count, 1, 1))
    cos, sin = np.cos(angle), np.sin(angle)
    u = ((x - shift_x) * cos + (y - shift_y) * sin) / scale
    v = (-(x - shift_x) * sin + (y - shift_y) * cos) / scale
    return u, v


def _draw_features(u, v, geometry):
    """Darkness (0..1) of eyes, brows, nose and mouth for each image, in face coordinates."""
    curve, half_width, opening, brow_height, brow_tilt, eye_open, wrinkle = (geometry[:, k, None, None] for k in range(7))
    ink = np.zeros_like(u)
    for side in (-1.0, 1.0):
        eye_u, eye_v = u - side * 0.3, v + 0.12
        eye_height = 0.065 * eye_open
        ink = np.maximum(ink, _smooth_inside(np.hypot(eye_u / 0.13, eye_v / eye_height) - 1.0, 0.25))
        brow_y = -0.32 - brow_height
        inner_y, outer_y = brow_y - 0.08 * brow_tilt, brow_y + 0.08 * brow_tilt
        brow = _segment_distance(u, v, side * 0.12, inner_y, side * 0.46, outer_y) - 0.035
        ink = np.maximum(ink, 0.9 * _smooth_inside(brow))
        wrinkle_line = _segment_distance(u, v, side * 0.05, 0.05, side * 0.16, 0.0) - 0.018
        ink = np.maximum(ink, 0.7 * np.clip(wrinkle, 0, 1) * _smooth_inside(wrinkle_line))
    nose = _segment_distance(u, v, 0.0, -0.02, 0.0, 0.18) - 0.02
    ink = np.maximum(ink, 0.5 * _smooth_inside(nose))
    mouth_u = np.clip(u / half_width, -1.5, 1.5)
    centre = 0.45 - curve * (mouth_u**2 - 0.5)
    upper_lip = centre - opening / 2 * (1 - mouth_u**2)
    lower_lip = centre + opening / 2 * (1 - mouth_u**2)
    across = np.abs(u) / half_width - 1.0
    lip_line = np.maximum(across * half_width, np.maximum(upper_lip - v, v - lower_lip) - 0.022)
    ink = np.maximum(ink, _smooth_inside(lip_line))
    return ink


def _render(rng, geometry):
    """Grayscale images (n, 48, 48) in [0, 1]: face, features, lighting, blur and noise."""
    count = len(geometry)
    u, v = _face_coordinates(rng, count)
    skin = rng.uniform(0.45, 0.8, (count, 1, 1))
    background = rng.uniform(0.05, 0.95, (count, 1, 1))
    face = _smooth_inside(np.hypot(u / 0.72, v / 0.92) - 1.0, 0.05)
    image = background + (skin - background) * face
    image = image - face * _draw_features(u, v, geometry) * skin * rng.uniform(0.6, 0.95, (count, 1, 1))
    direction = rng.uniform(0, 2 * np.pi, (count, 1, 1))
    strength = rng.uniform(0, 0.35, (count, 1, 1))
    image = image * (1 + strength * (np.cos(direction) * u + np.sin(direction) * v) / 2)
    image = _blur(image, rng.uniform(0.0, 1.2, count))
    image = image + rng.normal(0, 1, image.shape) * rng.uniform(0.01, 0.06, (count, 1, 1))
    return np.clip(image, 0, 1)


def _blur(images, sigmas):
    """Separable Gaussian blur with a per-image standard deviation (in pixels)."""
    offsets = np.arange(-3, 4)
    kernels = np.exp(-(offsets**2) / (2 * np.maximum(sigmas, 1e-3)[:, None] ** 2))
    kernels /= kernels.sum(axis=1, keepdims=True)
    padded = np.pad(images, ((0, 0), (3, 3), (3, 3)), mode="edge")
    rows = sum(kernels[:, k, None, None] * padded[:, k : k + data.IMAGE_SIDE, :] for k in range(7))
    return sum(kernels[:, k, None, None] * rows[:, :, k : k + data.IMAGE_SIDE] for k in range(7))


def generate(n_images: int, seed: int, *, class_weights=None, label_noise: float = 0.0, variation: float = 1.0, split_fractions=None, batch: int = 512):
    """Images (n, 48, 48) uint8, labels int8 and FER2013 Usage names for a synthetic dataset."""
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    rng = np.random.default_rng(seed)
    weights = np.ones(len(data.EMOTIONS)) if class_weights is None else np.asarray(class_weights, dtype=float)
    if weights.shape != (len(data.EMOTIONS),) or (weights < 0).any() or weights.sum() == 0:
        raise ValueError(f"class_weights needs {len(data.EMOTIONS)} non-negative numbers, got {class_weights}")
    true_labels = rng.choice(len(data.EMOTIONS), size=n_images, p=weights / weights.sum())
    geometry = _sample_parameters(rng, true_labels, variation)
    images = np.concatenate([_render(rng, geometry[start : start + batch]) for start in range(0, n_images, batch)])
    noisy = rng.random(n_images) < label_noise
    shifted = (true_labels + rng.integers(1, len(data.EMOTIONS), n_images)) % len(data.EMOTIONS)
    labels = np.where(noisy, shifted, true_labels).astype(np.int8)
    fractions = split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    split_names = {split: usage for usage, split in data.USAGE_TO_SPLIT.items()}
    order = rng.permutation(n_images)
    usage = np.empty(n_images, dtype=object)
    bounds = np.round(np.cumsum([fractions[split] for split in data.SPLITS]) / sum(fractions.values()) * n_images).astype(int)
    for split, rows in zip(data.SPLITS, np.split(order, bounds[:-1])):
        usage[rows] = split_names[split]
    return np.round(images * 255).astype(np.uint8), labels, usage


_PIXEL_TEXT = np.array([str(value) for value in range(256)], dtype=object)


def write_csv(path, images, labels, usage):
    """Write rows in FER2013's CSV format (training rows first, like the original), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.argsort([list(data.USAGE_TO_SPLIT).index(name) for name in usage], kind="stable")
    with data.atomic_outputs({"csv": path}) as partial, open(partial["csv"], "w", newline="\n") as stream:
        stream.write("emotion,pixels,Usage\n")
        for row in order:
            pixels = " ".join(_PIXEL_TEXT[images[row].ravel()])
            stream.write(f"{labels[row]},{pixels},{usage[row]}\n")
