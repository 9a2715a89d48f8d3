"""Training throughput: images/s of each registered model with the project's input pipeline
(uint8 -> float per batch, augmentation, prefetch) against plain ``model.fit`` on a float32 array,
with XLA compilation, and with bfloat16 mixed precision (``precision: mixed_bfloat16``); achieved
GFLOP/s against this machine's fp32 peak (bfloat16 runs on other units, e.g. AMX, and can exceed it).

    python bench/train_throughput.py [--csv PATH] [--images 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import DEFAULT_CSV, REPO, cpu_description, median  # noqa: E402

from emotionnet import data, models, runtime, train  # noqa: E402

BFLOAT16 = "pipeline + augmentation, bfloat16"
AUGMENT = {"flip": True, "translate": 0.1, "rotate": 0.04, "zoom": 0.1, "contrast": 0.2, "erase": 0.25}


def peak_gflops() -> tuple[float, str]:
    """cores x FMA units x fp32 lanes x 2 flops x clock, from /proc/cpuinfo (AVX2/AVX-512, 2 FMA units assumed)."""
    flags, mhz = "", 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":")[1])
    lanes = 16 if " avx512f" in flags else 8 if " avx2" in flags else 4
    cores = os.cpu_count()
    peak = cores * 2 * lanes * 2 * mhz / 1000
    return peak, f"{cores} cores x 2 FMA units x {lanes} fp32 lanes x 2 flops x {mhz / 1000:.2f} GHz = {peak:.1f} GFLOP/s"


def model_settings(name: str, block: dict) -> dict:
    settings = {**train.DEFAULTS, **block, "epochs": 1, "schedule": "constant", "warmup_epochs": 0}
    settings.pop("seed", None)
    return settings


def contenders(settings, images, labels):
    """name -> (compiled model, factory of model.fit's data arguments)."""
    batch = settings["batch_size"]
    float_images = images[..., None].astype(np.float32) / 255.0  # the naive way: the subset as float32
    one_hot = np.eye(len(data.EMOTIONS), dtype=np.float32)[labels]
    steps = len(images) // batch
    runs = {}
    runs["plain fit, float32 array"] = (train.build_compiled_model(settings, steps), lambda: {"x": float_images, "y": one_hot, "batch_size": batch, "shuffle": True})
    runs["pipeline, no augmentation"] = (train.build_compiled_model(settings, steps), lambda: {"x": train.make_dataset(images, labels, batch, seed=1)})
    runs["pipeline + augmentation"] = (train.build_compiled_model(settings, steps), lambda: {"x": train.make_dataset(images, labels, batch, seed=1, augment=AUGMENT)})
    runs["pipeline + augmentation + XLA"] = (train.build_compiled_model({**settings, "jit_compile": True}, steps), lambda: {"x": train.make_dataset(images, labels, batch, seed=1, augment=AUGMENT)})
    runs[BFLOAT16] = (train.build_compiled_model({**settings, "precision": "mixed_bfloat16"}, steps), lambda: {"x": train.make_dataset(images, labels, batch, seed=1, augment=AUGMENT)})
    return runs


def distinct_models(config: dict) -> list[str]:
    """Config model names, skipping those that train the same network as an earlier one (other seed or epochs)."""
    names, seen = [], []
    for name, block in config["models"].items():
        network = {key: value for key, value in model_settings(name, block).items() if key not in ("epochs", "precision")}
        if network not in seen:
            names.append(name)
            seen.append(network)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--images", type=int, default=2048, help="training images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="config model names (default: all in config/config.yaml)")
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), seed=0, deterministic=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    names = args.models or distinct_models(config)
    parsed = data.parse_csv(args.csv, workers=2)
    rows = np.flatnonzero(parsed.split_codes == 0)[: args.images]
    images, labels = parsed.images[rows], parsed.labels[rows].astype(np.int64)
    peak, how = peak_gflops()
    print(f"machine: {cpu_description()}\npeak: {how}\n{len(images)} training images from {args.csv} per timed epoch, median of {args.repeats}\n")
    print(f"{'model':<10}{'contender':<34}{'img/s':>8}{'GFLOP/s':>9}{'% peak':>8}{'vs plain':>9}")
    worst_ratio, best_peak = np.inf, 0.0
    for name in names:
        settings = model_settings(name, config["models"][name])
        runs = contenders(settings, images, labels)
        flops_per_image = 3 * 2 * models.multiply_adds(next(iter(runs.values()))[0])  # forward + backward ~ 3x forward
        for model, factory in runs.values():
            model.fit(**factory(), epochs=1, verbose=0)  # trace and warm up
        seconds = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, (model, factory) in runs.items():
                arguments = factory()
                start = time.perf_counter()
                model.fit(**arguments, epochs=1, verbose=0)
                seconds[label].append(time.perf_counter() - start)
        plain = len(images) / median(seconds["plain fit, float32 array"])
        for label, values in seconds.items():
            rate = len(images) / median(values)
            gflops = rate * flops_per_image / 1e9
            print(f"{name:<10}{label:<34}{rate:>8.0f}{gflops:>9.1f}{100 * gflops / peak:>7.0f}%{rate / plain:>8.2f}x")
            if label == "pipeline + augmentation":
                worst_ratio = min(worst_ratio, rate / plain)
            if label != BFLOAT16:
                best_peak = max(best_peak, gflops / peak)
        print()
    print(f"SUMMARY train: pipeline with augmentation is at worst {worst_ratio:.2f}x plain fit; best model reaches {100 * best_peak:.0f}% of the fp32 peak FLOP/s")


if __name__ == "__main__":
    main()
