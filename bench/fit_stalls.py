"""Why plain ``model.fit`` on arrays is erratic on a small machine: the seconds of every pass of
plain ``fit`` on a float32 array, against the same shuffled float32 batches fed through ``tf.data``
with its autotuner on (TensorFlow's default, which Keras' array adapter gets) and off (as the
project's pipeline runs, ``train.PipelineImages``). All three run one training step per call
(Keras' default) and no augmentation, so they differ only in how batches reach the model. A pass
counts as late when it takes more than ``--late`` (a fraction) longer than the median pass with
the autotuner off.

    python bench/fit_stalls.py [--csv PATH] [--images 2048] [--repeats 6] [--late 0.05] [--models seed vgg]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import DEFAULT_CSV, REPO, cpu_description, median, training_images  # noqa: E402
from train_throughput import model_settings, time_fit_passes  # noqa: E402

from emotionnet import runtime, train  # noqa: E402

PLAIN = "plain fit, float32 array"
AUTOTUNE_ON = "tf.data from the array, autotuner on"
AUTOTUNE_OFF = "tf.data from the array, autotuner off"


def sliced_batches(float_images, one_hot, batch_size: int, autotune: bool):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((float_images, one_hot)).shuffle(len(one_hot), seed=1).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = autotune
    return dataset.with_options(options)


def contenders(settings, images, labels) -> dict:
    """label -> (compiled model, factory of model.fit's data arguments), one step per call each."""
    batch = settings["batch_size"]
    float_images = images[..., None].astype(np.float32) / 255.0
    one_hot = train.one_hot(labels)
    steps = len(images) // batch
    return {
        PLAIN: (train.build_compiled_model(settings, steps, steps_per_call=1), lambda: {"x": float_images, "y": one_hot, "batch_size": batch, "shuffle": True}),
        AUTOTUNE_ON: (train.build_compiled_model(settings, steps, steps_per_call=1), lambda: {"x": sliced_batches(float_images, one_hot, batch, True)}),
        AUTOTUNE_OFF: (train.build_compiled_model(settings, steps, steps_per_call=1), lambda: {"x": sliced_batches(float_images, one_hot, batch, False)}),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--images", type=int, default=2048, help="training images per timed pass")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--late", type=float, default=0.05, help="a pass this fraction longer than the median pass with the autotuner off counts as late")
    parser.add_argument("--models", nargs="*", default=["seed", "vgg"], help="config model names")
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), seed=0, deterministic=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    images, labels = training_images(args.csv, args.images)
    print(f"machine: {cpu_description()}\n{len(images)} training images from {args.csv} per pass, {args.repeats} passes of each contender\n")
    late = {label: [0, 0] for label in (PLAIN, AUTOTUNE_ON, AUTOTUNE_OFF)}
    for name in args.models:
        passes = time_fit_passes(contenders(model_settings(name, config["models"][name]), images, labels), args.repeats)
        on_time = median(passes[AUTOTUNE_OFF]) * (1 + args.late)
        for label, seconds in passes.items():
            late_passes = sum(value > on_time for value in seconds)
            late[label][0] += late_passes
            late[label][1] += len(seconds)
            print(f"{name:<8}{label:<40}median {len(images) / median(seconds):6.0f} img/s  late {late_passes}/{len(seconds)}  pass seconds: {' '.join(f'{value:.2f}' for value in seconds)}")
        print()
    print(f"SUMMARY fit stalls: passes more than {args.late:.0%} longer than the median pass with the autotuner off: " + "; ".join(f"{label} {count}/{total}" for label, (count, total) in late.items()))


if __name__ == "__main__":
    main()
