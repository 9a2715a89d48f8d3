"""Export a trained model to ONNX, TensorFlow Lite or a TensorFlow SavedModel, and check the
exported model's outputs against the Keras model on sample inputs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "savedmodel": "_savedmodel", "keras": "_inference.keras"}


class ExportMismatch(ValueError):
    """An exported model whose outputs differ from the Keras model's by more than the tolerance."""


def sample_inputs(count: int = 16, seed: int = 0) -> np.ndarray:
    """Float images (count, 48, 48, 1) in [0, 1], as the models take them."""
    return np.random.default_rng(seed).integers(0, 256, (count, 48, 48, 1)).astype(np.float32) / 255.0


def default_output(model_path, fmt) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIXES[fmt])


def export(model_path, fmt: str, out=None) -> Path:
    """Write ``model_path`` in format ``fmt`` ('onnx', 'tflite', 'savedmodel', 'keras': a copy
    without optimiser state); returns the path."""
    from emotionnet import models

    if fmt not in SUFFIXES:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(SUFFIXES)}")
    out = Path(out) if out else default_output(model_path, fmt)
    model = models.load(model_path)
    model(sample_inputs(1), training=False)  # exporters need a model that has been called
    if fmt == "keras":
        inference_copy(model).save(out)
    elif fmt == "savedmodel":
        shutil.rmtree(out, ignore_errors=True)
        model.export(str(out), format="tf_saved_model", verbose=False)
    elif fmt == "onnx":
        model.export(str(out), format="onnx", verbose=False)
    else:
        out.write_bytes(_tflite_bytes(model))
    return out


def export_checked(model_path, fmt: str, out=None, tolerance: float = 1e-4) -> tuple[Path, float]:
    """``export``, then ``verify``: returns the path and the largest difference, or removes what
    it wrote and raises ExportMismatch when the difference is above ``tolerance`` (or NaN); removes
    it too when the check itself fails."""
    written = export(model_path, fmt, out)
    try:
        difference = verify(model_path, written, fmt)
    except Exception:
        remove(written)
        raise
    if not difference <= tolerance:  # also a NaN difference
        remove(written)
        raise ExportMismatch(f"the exported {fmt} model differs from Keras by {difference:.2e} on sample inputs, above the tolerance {tolerance:g}; {written} removed")
    return written, difference


def inference_copy(model):
    """The same network and weights without the optimiser state (a third of the file size)."""
    copy = model.__class__.from_config(model.get_config())  # uncompiled, unlike clone_model
    copy.set_weights(model.get_weights())
    return copy


def remove(path):
    """Delete an exported file or SavedModel folder (after a failed check)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _tflite_bytes(model) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def run_exported(path, fmt: str, inputs: np.ndarray) -> np.ndarray:
    """Outputs of an exported model on ``inputs``."""
    if fmt == "keras":
        from emotionnet import models

        return np.asarray(models.load(path)(inputs, training=False))
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return np.asarray(loaded.serve(inputs))
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    input_detail, output_detail = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(input_detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(output_detail["index"])


def verify(model_path, exported_path, fmt: str) -> float:
    """Largest absolute difference between Keras and the exported model on sample inputs."""
    from emotionnet import models

    inputs = sample_inputs()
    expected = np.asarray(models.load(model_path)(inputs, training=False))
    return float(np.abs(run_exported(exported_path, fmt, inputs) - expected).max())
