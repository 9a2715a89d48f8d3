"""CPU cost of the training pipeline's augmentation: the compiled affine warp (``augment.warp``)
against TensorFlow's ``ImageProjectiveTransformV3`` that it replaced, the random crop as two
gathers against the nearest-neighbour transform, and compiled random erasing against noise drawn
for every pixel (each pair checked to give the same values bit for bit); and whole pipeline
passes (flip, affine, contrast, erasing, 40x40 crops) as training runs them against the same
pipeline as it was before: TensorFlow's transforms, noise for every pixel, random draws by
``tf.random.stateless_uniform`` and the batch function traced anew every epoch. Wall and CPU milliseconds per batch of 128, median of the repeats; contenders
alternate.

    python bench/augment_cost.py [--csv PATH] [--images 8192] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import DEFAULT_CSV, cpu_description, median, training_images  # noqa: E402
from train_throughput import AUGMENT  # noqa: E402

from emotionnet import augment, runtime, train  # noqa: E402

BATCH = 128
CROP = 40
OP_PAIRS = (  # kind, the way before, the project's way
    ("warp", "warp, TensorFlow's transform", "warp, compiled (augment.warp)"),
    ("crop", "crop, TensorFlow's transform", "crop, gathers (augment.random_crop)"),
    ("erase", "erase, noise for every pixel", "erase, compiled (augment.erase)"),
)


def tensorflow_warp(images, transforms):
    """What ``augment.warp`` computes, as TensorFlow's own op."""
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")


def tensorflow_crop(images, seed, size: int):
    """What ``augment.random_crop`` computes, as a nearest-neighbour image transform."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    room = tf.shape(images)[1] - size + 1
    left = tf.cast(augment._uniform(seed, [batch], 0, room, 14, tf.int32), tf.float32)
    top = tf.cast(augment._uniform(seed, [batch], 0, room, 15, tf.int32), tf.float32)
    ones, zeros = tf.ones([batch]), tf.zeros([batch])
    transforms = tf.stack([ones, zeros, left, zeros, ones, top, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[size, size], fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")


def tensorflow_uniform(seed, shape, low, high, salt, dtype=None):
    """What ``augment._uniform`` draws, by ``tf.random.stateless_uniform``."""
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed=seed + tf.constant([0, salt], tf.int64) * 7919, minval=low, maxval=high, dtype=dtype or tf.float32)


def tensorflow_erase(images, seed, probability: float, max_fraction: float = 0.4):
    """What ``augment.erase`` computes, with uniform noise drawn for every pixel."""
    import tensorflow as tf

    batch, side = tf.shape(images)[0], tf.cast(tf.shape(images)[1], tf.float32)
    height = tensorflow_uniform(seed, [batch, 1, 1, 1], 0.1, max_fraction, 7) * side
    width = tensorflow_uniform(seed, [batch, 1, 1, 1], 0.1, max_fraction, 8) * side
    top = tensorflow_uniform(seed, [batch, 1, 1, 1], 0.0, 1.0, 9) * (side - height)
    left = tensorflow_uniform(seed, [batch, 1, 1, 1], 0.0, 1.0, 10) * (side - width)
    rows, columns = tf.reshape(tf.range(side), [1, -1, 1, 1]), tf.reshape(tf.range(side), [1, 1, -1, 1])
    inside = (rows >= top) & (rows < top + height) & (columns >= left) & (columns < left + width)
    chosen = tensorflow_uniform(seed, [batch, 1, 1, 1], 0.0, 1.0, 11) < probability
    return tf.where(inside & chosen, tensorflow_uniform(seed, tf.shape(images), 0.0, 1.0, 12), images)


@contextlib.contextmanager
def tensorflow_transforms():
    """Within: ``augment`` warps and crops with TensorFlow's image transform, erases with noise
    for every pixel and draws by ``tf.random.stateless_uniform``, as before."""
    saved = augment.warp, augment.random_crop, augment.erase, augment._uniform
    augment.warp, augment.random_crop, augment.erase, augment._uniform = tensorflow_warp, tensorflow_crop, tensorflow_erase, tensorflow_uniform
    try:
        yield
    finally:
        augment.warp, augment.random_crop, augment.erase, augment._uniform = saved


def timed(run, calls: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of ``calls`` calls of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        run()
    return 1000 * (time.perf_counter() - wall) / calls, 1000 * (time.process_time() - cpu) / calls


def op_contenders(images):
    """name -> callable running one batch through the op, and a check that the pairs agree."""
    import tensorflow as tf

    batch = tf.constant(images[:BATCH, :, :, None].astype(np.float32) / 255)
    seed = tf.constant([1, 2], tf.int64)
    transforms = augment.affine_transforms(seed, BATCH, tf.constant(48.0), AUGMENT["translate"], AUGMENT["rotate"], AUGMENT["zoom"])
    functions = {
        "warp, TensorFlow's transform": tf.function(lambda: tensorflow_warp(batch, transforms)),
        "warp, compiled (augment.warp)": tf.function(lambda: augment.warp(batch, transforms)),
        "crop, TensorFlow's transform": tf.function(lambda: tensorflow_crop(batch, seed, CROP)),
        "crop, gathers (augment.random_crop)": tf.function(lambda: augment.random_crop(batch, seed, CROP)),
        "erase, noise for every pixel": tf.function(lambda: tensorflow_erase(batch, seed, AUGMENT["erase"])),
        "erase, compiled (augment.erase)": tf.function(lambda: augment.erase(batch, seed, AUGMENT["erase"])),
    }
    outputs = [function().numpy() for function in functions.values()]
    same = all(np.array_equal(a.view(np.uint32), b.view(np.uint32)) for a, b in (outputs[:2], outputs[2:4], outputs[4:]))
    return {name: (lambda function=function: function().numpy()) for name, function in functions.items()}, same


def pass_contenders(images, labels):
    """name -> callable running one pipeline pass (an epoch of ``images``, the next at each call)."""
    counter = itertools.count(1)
    pipeline_images = train.PipelineImages(images, labels)

    def as_before():
        with tensorflow_transforms():
            dataset = train.PipelineImages(images, labels).batches(BATCH, seed=1, epoch=next(counter), augment=AUGMENT, crop=CROP)
            for _ in dataset:
                pass

    def now():
        for _ in pipeline_images.batches(BATCH, seed=1, epoch=next(counter), augment=AUGMENT, crop=CROP):
            pass

    return {"pipeline pass, as before": as_before, "pipeline pass, now": now}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--images", type=int, default=8192, help="training images per pipeline pass")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50, help="calls of each op per repeat")
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), seed=0, deterministic=False)
    images, labels = training_images(args.csv, args.images)
    batches = -(-len(images) // BATCH)
    print(f"machine: {cpu_description()}\n{len(images)} training images from {args.csv}; batches of {BATCH}; {args.repeats} repeats, median\n")
    ops, same = op_contenders(images)
    passes = pass_contenders(images, labels)
    for run in [*ops.values(), *passes.values()]:
        run()  # compile, trace and warm up
    results = {name: [] for name in [*ops, *passes]}
    for _ in range(args.repeats):
        for name, run in ops.items():
            results[name].append(timed(run, args.calls))
        for name, run in passes.items():
            wall, cpu = timed(run, 1)
            results[name].append((wall / batches, cpu / batches))
    print(f"{'contender':<40}{'wall ms':>9}{'CPU ms':>9}   per batch")
    cpu = {}
    for name, values in results.items():
        wall_ms, cpu[name] = median([value[0] for value in values]), median([value[1] for value in values])
        print(f"{name:<40}{wall_ms:>9.2f}{cpu[name]:>9.2f}")
    ratio = {kind: cpu[before] / cpu[now] for kind, before, now in OP_PAIRS}
    print(
        f"\nSUMMARY augment: compiled warp {ratio['warp']:.2f}x less CPU than TensorFlow's transform ({'same values' if same else 'VALUES DIFFER'}), "
        f"crop by gathers {ratio['crop']:.2f}x, compiled erasing {ratio['erase']:.2f}x; a pipeline pass with augmentation and crops {cpu['pipeline pass, as before'] / cpu['pipeline pass, now']:.2f}x less CPU per batch than before"
    )


if __name__ == "__main__":
    main()
