"""Where a training step's time goes: TensorFlow's profiler traces a few training steps of a
configured model, once with Keras' own batch-norm layers (``batch_norm: keras``) and once with the
project's fused ones (``batch_norm: fused``), and sums the CPU time of the ops by kind
(convolutions, batch-norm ops, element-wise and other ops); the wall-clock time of the traced steps
gives the ratio. The input is one fixed random batch (the input pipeline is timed by
train_throughput.py); the model trains in its config block's precision, on its crop size if it has one.

    python bench/train_profile.py [--model vgg_crop] [--steps 16] [--top 12]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from common import REPO, cpu_description  # noqa: E402

from emotionnet import runtime, train  # noqa: E402

CONVOLUTION_OPS = ("Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "DepthwiseConv2dNative", "MaxPool", "MaxPoolGrad")


def op_kind(op_type: str) -> str:
    """'convolution', 'batch norm' or 'element-wise and other' for an op type (oneDNN's _Mkl and
    _MklNative variants count as the op they replace)."""
    base = op_type.replace("_MklNative", "").replace("_Mkl", "")
    if base in CONVOLUTION_OPS:
        return "convolution"
    if base.startswith("FusedBatchNorm"):
        return "batch norm"
    return "element-wise and other"


def op_seconds(trace_folder) -> dict:
    """Op type -> CPU seconds summed over TensorFlow's compute threads, from the profiler's trace."""
    try:
        from tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2

    seconds = collections.Counter()
    for path in Path(trace_folder).rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    op_type = plane.event_metadata[event.metadata_id].name.split(":")[-1]
                    if op_type != "Process":  # the span around a thread's ops, not an op
                        seconds[op_type] += event.duration_ps / 1e12
    return dict(seconds)


def profile(settings: dict, steps: int) -> tuple[float, dict]:
    """(wall-clock seconds of ``steps`` traced training steps, op type -> CPU seconds)."""
    import numpy as np
    import tensorflow as tf

    side = settings["crop"] or 48
    batch = settings["batch_size"]
    model = train.build_compiled_model(settings, steps, steps_per_call=1)
    images = np.random.default_rng(0).random((batch, side, side, 1), dtype=np.float32)
    targets = train.one_hot(np.arange(batch) % 7)
    dataset = tf.data.Dataset.from_tensors((images, targets)).repeat(steps)
    model.fit(dataset, epochs=1, verbose=0)  # trace and warm up
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        return wall, op_seconds(folder)


def by_kind(seconds: dict) -> dict:
    kinds = collections.Counter()
    for op_type, value in seconds.items():
        kinds[op_kind(op_type)] += value
    return kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vgg_crop", help="a model name of config/config.yaml")
    parser.add_argument("--steps", type=int, default=16, help="traced training steps per contender")
    parser.add_argument("--top", type=int, default=12, help="op types listed per contender")
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), seed=0, deterministic=False)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    block = {key: value for key, value in config["models"][args.model].items() if key != "seed"}
    base = {**train.DEFAULTS, **block, "weight_average_decay": None}
    print(f"machine: {cpu_description()}\nmodel: {args.model} ({base['architecture']}, {base['precision']}, batch {base['batch_size']}, {base['crop'] or 48}x{base['crop'] or 48} images), {args.steps} traced steps each\n")
    walls = {}
    for batch_norm in ("keras", "fused"):
        wall, seconds = profile({**base, "batch_norm": batch_norm}, args.steps)
        walls[batch_norm] = wall
        print(f"batch_norm: {batch_norm}: {1000 * wall / args.steps:.0f} ms per step; CPU seconds of the {args.steps} steps by kind:")
        for kind, value in sorted(by_kind(seconds).items(), key=lambda item: -item[1]):
            print(f"  {kind:<24}{value:8.2f}")
        print("  top op types:")
        for op_type, value in sorted(seconds.items(), key=lambda item: -item[1])[: args.top]:
            print(f"    {op_type:<34}{value:8.2f}")
        print()
    print(f"SUMMARY profile: {args.model} trains {walls['keras'] / walls['fused']:.2f}x faster with fused batch norm than with Keras' layers ({1000 * walls['keras'] / args.steps:.0f} against {1000 * walls['fused'] / args.steps:.0f} ms per step)")


if __name__ == "__main__":
    main()
