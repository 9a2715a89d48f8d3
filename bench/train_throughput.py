"""Training throughput: images/s of each registered model with the project's input pipeline
(uint8 -> float per batch, augmentation, prefetch) against plain ``model.fit`` on a float32 array,
and against the naive way to augment (Keras' random preprocessing layers in front of the model, fed
by plain ``fit``), with XLA compilation, with bfloat16 mixed precision (``precision:
mixed_bfloat16``), with Keras' own batch-norm layers instead of the project's fused ones
(``batch_norm: keras``, in float32 and in bfloat16), and with Keras' default of one training step per call into TensorFlow
instead of the project's ``train.STEPS_PER_CALL`` (plain ``fit`` runs with Keras' default); achieved
GFLOP/s against this machine's fp32 peak (bfloat16 runs on other units, e.g. AMX, and can exceed
it). Each figure is the median pass; the fastest pass is printed too, since
passes of one contender can differ by 1.5x on a shared machine.

    python bench/train_throughput.py [--csv PATH] [--images 2048] [--repeats 3] [--models NAME ...]
                                     [--contenders KEY ...]

``--contenders`` times only some of them (keys plain, keras, no-augment, pipeline, one-step, xla,
bf16, keras-bn, bf16-keras-bn; plain fit and the pipeline with augmentation always run), e.g. ``--images 28709
--contenders plain pipeline`` for whole real epochs in reasonable time.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import DEFAULT_CSV, REPO, cpu_description, median, training_images  # noqa: E402

from emotionnet import models, runtime, train  # noqa: E402

PLAIN = "plain fit, float32 array"
KERAS_LAYERS = "plain fit + Keras augmentation layers"
PIPELINE = "pipeline + augmentation"
BFLOAT16 = "pipeline + augmentation, bfloat16"
ONE_STEP = "pipeline + augmentation, 1 step per call"
NO_AUGMENT = "pipeline, no augmentation"
XLA = "pipeline + augmentation + XLA"
KERAS_BATCH_NORM = "pipeline + augmentation, Keras batch norm"
BFLOAT16_KERAS_BATCH_NORM = "pipeline + aug, bfloat16, Keras b. norm"
CONTENDERS = {
    "plain": PLAIN,
    "keras": KERAS_LAYERS,
    "no-augment": NO_AUGMENT,
    "pipeline": PIPELINE,
    "one-step": ONE_STEP,
    "xla": XLA,
    "bf16": BFLOAT16,
    "keras-bn": KERAS_BATCH_NORM,
    "bf16-keras-bn": BFLOAT16_KERAS_BATCH_NORM,
}
BFLOAT16_LABELS = (BFLOAT16, BFLOAT16_KERAS_BATCH_NORM)
AUGMENT = {"flip": True, "translate": 0.1, "rotate": 0.04, "zoom": 0.1, "contrast": 0.2, "erase": 0.25}


def peak_gflops(cpuinfo: str | None = None, cores: int | None = None) -> tuple[float, str]:
    """cores x FMA units x fp32 lanes x 2 flops x clock, from /proc/cpuinfo (AVX2/AVX-512, 2 FMA units assumed).
    ``cpuinfo`` (the text of /proc/cpuinfo) and ``cores`` (os.cpu_count()) default to this machine's."""
    flags, mhz = "", 0.0
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":")[1])
    lanes = 16 if " avx512f" in flags else 8 if " avx2" in flags else 4
    cores = cores or os.cpu_count()
    peak = cores * 2 * lanes * 2 * mhz / 1000
    return peak, f"{cores} cores x 2 FMA units x {lanes} fp32 lanes x 2 flops x {mhz / 1000:.2f} GHz = {peak:.1f} GFLOP/s"


def model_settings(name: str, block: dict) -> dict:
    # every contender times the network on whole 48x48 images (a crop model's training steps cost
    # about (crop/48)^2 of that), in float32 unless it is the bfloat16 contender, whatever
    # precision the model's config block trains in; with the project's fused batch-norm layers
    # unless it is the Keras batch-norm contender; without weight averaging, whose callback (never
    # attached here) would make every contender train one step per call; with plain training steps
    # (sharpness-aware ones cost two passes each, whatever feeds them)
    settings = {**train.DEFAULTS, **block, "epochs": 1, "schedule": "constant", "warmup_epochs": 0, "crop": None, "precision": "float32", "batch_norm": "fused", "weight_average_decay": None, "sam_rho": 0.0}
    settings.pop("seed", None)
    return settings


def keras_augmentation_layers():
    """Keras' random preprocessing layers matching AUGMENT (what a Keras tutorial would use)."""
    import keras

    return [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomTranslation(AUGMENT["translate"], AUGMENT["translate"]),
        keras.layers.RandomRotation(AUGMENT["rotate"]),
        keras.layers.RandomZoom(AUGMENT["zoom"]),
        keras.layers.RandomContrast(AUGMENT["contrast"], value_range=(0, 1)),
        keras.layers.RandomErasing(AUGMENT["erase"], scale=(0.01, 0.16), value_range=(0, 1)),
    ]


def with_keras_augmentation(settings, steps):
    """The model behind Keras' augmentation layers, compiled as the project compiles it."""
    import keras

    model = keras.Sequential([keras.Input(models.INPUT_SHAPE), *keras_augmentation_layers(), train.build_model(settings)])
    return train.compile_model(model, settings, steps, steps_per_call=1)


def contenders(settings, images, labels, keys=None):
    """name -> (compiled model, factory of model.fit's data arguments), for the ``CONTENDERS``
    keys given (default all; plain fit and the pipeline with augmentation are always built)."""
    batch = settings["batch_size"]
    float_images = images[..., None].astype(np.float32) / 255.0  # the naive way: the subset as float32
    one_hot = train.one_hot(labels)
    steps = len(images) // batch

    def plain_arguments():
        return {"x": float_images, "y": one_hot, "batch_size": batch, "shuffle": True}

    def pipeline_arguments(augment=None):
        # as in training: the images made into tensors once, then one pipeline per pass (epoch),
        # its length hidden from Keras and given as the number of steps
        pipeline_images, epochs = train.PipelineImages(images, labels), itertools.count()

        def arguments():
            batches, steps = train.hide_length(pipeline_images.batches(batch, seed=1, epoch=next(epochs), augment=augment))
            return {"x": batches, "steps_per_epoch": steps, "shuffle": False}

        return arguments

    builders = {
        PLAIN: lambda: (train.build_compiled_model(settings, steps, steps_per_call=1), plain_arguments),
        KERAS_LAYERS: lambda: (with_keras_augmentation(settings, steps), plain_arguments),
        NO_AUGMENT: lambda: (train.build_compiled_model(settings, steps), pipeline_arguments()),
        PIPELINE: lambda: (train.build_compiled_model(settings, steps), pipeline_arguments(AUGMENT)),
        ONE_STEP: lambda: (train.build_compiled_model(settings, steps, steps_per_call=1), pipeline_arguments(AUGMENT)),
        XLA: lambda: (train.build_compiled_model({**settings, "jit_compile": True}, steps), pipeline_arguments(AUGMENT)),
        BFLOAT16: lambda: (train.build_compiled_model({**settings, "precision": "mixed_bfloat16"}, steps), pipeline_arguments(AUGMENT)),
        KERAS_BATCH_NORM: lambda: (train.build_compiled_model({**settings, "batch_norm": "keras"}, steps), pipeline_arguments(AUGMENT)),
        BFLOAT16_KERAS_BATCH_NORM: lambda: (train.build_compiled_model({**settings, "precision": "mixed_bfloat16", "batch_norm": "keras"}, steps), pipeline_arguments(AUGMENT)),
    }
    chosen = {PLAIN, PIPELINE} | {CONTENDERS[key] for key in (CONTENDERS if keys is None else keys)}
    return {label: build() for label, build in builders.items() if label in chosen}


def time_fit_passes(runs: dict, repeats: int) -> dict:
    """label -> seconds of each timed one-epoch ``fit`` of ``runs`` (label -> (compiled model,
    factory of fit's data arguments)), after a warm-up pass each; the labels alternate."""
    for model, factory in runs.values():
        model.fit(**factory(), epochs=1, verbose=0)  # trace and warm up
    seconds = {label: [] for label in runs}
    for _ in range(repeats):
        for label, (model, factory) in runs.items():
            arguments = factory()
            start = time.perf_counter()
            model.fit(**arguments, epochs=1, verbose=0)
            seconds[label].append(time.perf_counter() - start)
    return seconds


def time_contenders(settings, images, labels, repeats: int, keys=None) -> tuple[dict, float]:
    """(contender -> seconds of each timed pass, alternating contenders; FLOPs per trained image)."""
    runs = contenders(settings, images, labels, keys)
    flops_per_image = 3 * 2 * models.multiply_adds(runs[PLAIN][0])  # forward + backward ~ 3x forward
    return time_fit_passes(runs, repeats), flops_per_image


def distinct_models(config: dict) -> list[str]:
    """Config model names, skipping those that train the same network at the same batch size as an
    earlier one (other seed, epochs, precision or optimiser settings: the same cost per image)."""
    names, seen = [], []
    for name, block in config["models"].items():
        settings = model_settings(name, block)
        network = [settings[key] for key in ("architecture", "hyperparameters", "batch_size")]
        if network not in seen:
            names.append(name)
            seen.append(network)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--images", type=int, default=2048, help="training images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="config model names (default: one per distinct network and batch size in config/config.yaml)")
    parser.add_argument("--contenders", nargs="*", choices=list(CONTENDERS), help="time only these (default all; plain and pipeline always)")
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), seed=0, deterministic=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    names = args.models or distinct_models(config)
    images, labels = training_images(args.csv, args.images)
    peak, how = peak_gflops()
    print(f"machine: {cpu_description()}\npeak: {how}\n{len(images)} training images (drawn at random, every class) from {args.csv} per timed epoch, {args.repeats} passes of each contender (median and fastest)\n")
    if len(images) < args.images:
        print(f"note: the CSV has only {len(images)} training images, not the {args.images} asked for\n")
    print(f"{'model':<14}{'contender':<40}{'img/s':>7}{'GFLOP/s':>9}{'% peak':>8}{'vs plain':>9}{'fastest':>9}{'vs plain':>9}")
    worst, worst_fastest, worst_keras, best_peak, fused_ratios = np.inf, np.inf, np.inf, 0.0, []
    for name in names:
        seconds, flops_per_image = time_contenders(model_settings(name, config["models"][name]), images, labels, args.repeats, args.contenders)
        plain, plain_fastest = len(images) / median(seconds[PLAIN]), len(images) / min(seconds[PLAIN])
        for label, values in seconds.items():
            rate, fastest = len(images) / median(values), len(images) / min(values)
            gflops = rate * flops_per_image / 1e9
            print(f"{name:<14}{label:<40}{rate:>7.0f}{gflops:>9.1f}{100 * gflops / peak:>7.0f}%{rate / plain:>8.2f}x{fastest:>9.0f}{fastest / plain_fastest:>8.2f}x")
            if label not in BFLOAT16_LABELS:
                best_peak = max(best_peak, gflops / peak)
        pipeline = len(images) / median(seconds[PIPELINE])
        worst = min(worst, pipeline / plain)
        worst_fastest = min(worst_fastest, len(images) / min(seconds[PIPELINE]) / plain_fastest)
        if KERAS_LAYERS in seconds:
            worst_keras = min(worst_keras, pipeline / (len(images) / median(seconds[KERAS_LAYERS])))
        for fused, keras_layers in ((PIPELINE, KERAS_BATCH_NORM), (BFLOAT16, BFLOAT16_KERAS_BATCH_NORM)):
            if fused in seconds and keras_layers in seconds:
                fused_ratios.append(median(seconds[keras_layers]) / median(seconds[fused]))
        print()
    keras_part = f" and at worst {worst_keras:.2f}x plain fit with Keras augmentation layers" if np.isfinite(worst_keras) else ""
    fused_part = f"; fused batch norm {min(fused_ratios):.2f}x-{max(fused_ratios):.2f}x Keras' layers" if fused_ratios else ""
    print(
        f"SUMMARY train: pipeline with augmentation is at worst {worst:.2f}x plain fit without augmentation "
        f"({worst_fastest:.2f}x comparing fastest passes){keras_part}{fused_part}; best model reaches {100 * best_peak:.0f}% of the fp32 peak FLOP/s"
    )


if __name__ == "__main__":
    main()
