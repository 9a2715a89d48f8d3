"""Training: the input pipeline, the optimiser and schedule, and an epoch loop that checkpoints
after every epoch so that a killed job resumes where it stopped, with identical results.

The best-validation weights are what the final model holds; the test split is never seen here."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from emotionnet import data, runtime

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds", "elapsed_seconds")
DEFAULTS = {
    "architecture": "seed",
    "hyperparameters": {},
    "epochs": 30,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_epochs": 0,
    "label_smoothing": 0.0,
    "mixup": 0.0,
    "class_weight": "none",
    "early_stopping_patience": None,
    "augment": {},
    "jit_compile": False,
    "precision": "float32",
    "batch_norm": "fused",
    "weight_average_decay": None,
    "sam_rho": 0.0,
    "crop": None,
    "teacher": [],
    "distillation": 0.0,
}

# Training steps per call into TensorFlow (Keras' steps_per_execution), see training_steps_per_call;
# bench/train_throughput.py measures it against one step per call.
STEPS_PER_CALL = 8


def one_hot(labels) -> np.ndarray:
    """(n, 7) float32 one-hot rows of label ids."""
    return np.eye(len(data.EMOTIONS), dtype=np.float32)[labels]


def make_dataset(images, labels, batch_size: int, *, seed: int | None = None, epoch: int = 0, augment: dict | None = None, mixup_alpha: float = 0.0, crop: int | None = None, targets=None):
    """One pass of ``PipelineImages(images, labels, targets).batches(...)``, for a dataset used once
    (validation, tests, benchmarks); an epoch loop keeps one PipelineImages and calls ``batches``
    for each epoch."""
    return PipelineImages(images, labels, targets).batches(batch_size, seed=seed, epoch=epoch, augment=augment, mixup_alpha=mixup_alpha, crop=crop)


class PipelineImages:
    """The training pipeline's input: uint8 images (with a mirrored copy beside them once a
    pipeline with the flip augmentation asks for it) and their targets, as tensors made once per
    training run. Each epoch's tf.data pipeline gathers its batches from these; a pipeline that
    made its own copy would keep it in memory until the process ends (about 130 MB per epoch on
    FER2013).

    ``targets`` (n, 7), if given, replaces the one-hot labels (soft targets for distillation; a
    mirrored image gets its original's row)."""

    def __init__(self, images, labels, targets=None):
        import tensorflow as tf

        self.count, self.mirrored = len(images), False
        self._prepare_functions = {}
        with tf.device("/cpu:0"):  # tf.data runs on the CPU, also where a GPU trains
            self.images = tf.constant(images)
            self.targets = tf.constant(one_hot(labels) if targets is None else np.asarray(targets, np.float32))

    def _add_mirrored_copy(self):
        """Rows count..2*count-1 of ``images``: the images mirrored left-right (made once)."""
        import tensorflow as tf

        if not self.mirrored:
            with tf.device("/cpu:0"):
                self.images = tf.concat([self.images, tf.reverse(self.images, axis=[2])], axis=0)
            self.mirrored = True
            self._prepare_functions.clear()  # they hold the images without the copy

    def batches(self, batch_size: int, *, seed: int | None = None, epoch: int = 0, augment: dict | None = None, mixup_alpha: float = 0.0, crop: int | None = None):
        """A tf.data pipeline: (shuffle) -> batch -> float [0, 1] -> (augment) -> (random ``crop``
        x ``crop`` windows) -> (mixup) -> targets -> prefetch. The whole dataset is never held as
        float32.

        Only the row numbers go through tf.data's shuffle and batch; each batch then gathers its
        images in one op. The shuffle order depends only on the seed and the number of rows, so
        the batches are exactly those of shuffling and batching the images themselves, without
        copying every image through the shuffle buffer one at a time. With the flip augmentation,
        each batch gathers its mirrored images from the mirrored uint8 copy: the same batches as
        ``augment.flip`` gives, without mirroring floats in every batch."""
        import tensorflow as tf

        if seed is None:  # an unshuffled dataset (validation) is never augmented nor cropped
            augment, mixup_alpha, crop = {}, 0.0, None
        prepare = self._prepare_function(dict(augment or {}), mixup_alpha, crop)
        rows = tf.data.Dataset.range(self.count)
        if seed is not None:
            rows = rows.shuffle(self.count, seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
        epoch_seed = tf.constant((seed or 0) * 1_000 + epoch, tf.int64)
        dataset = rows.batch(batch_size).enumerate()
        dataset = dataset.map(lambda batch_index, batch_rows: prepare(epoch_seed, batch_index, batch_rows), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # tf.data's autotuner costs about 2.5 s per pass on 2 cores (bench/train_throughput.py measured
        # 400 against 750 images/s on 2,048 images); without it, AUTOTUNE means one call per core
        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)

    def _prepare_function(self, augment: dict, mixup_alpha: float, crop: int | None):
        """The tf.function that makes one batch, (epoch seed, batch index, row numbers) ->
        (images, targets), traced once per training run and settings: tracing the augmentation
        again for every epoch's pipeline took about 0.1 s per epoch."""
        import tensorflow as tf

        from emotionnet import augment as augmentation

        mirror = bool(augment.pop("flip", False))
        if mirror:
            self._add_mirrored_copy()
        key = (tuple(sorted(augment.items())), mirror, mixup_alpha, crop)
        if key in self._prepare_functions:
            return self._prepare_functions[key]
        all_images, all_targets, count = self.images, self.targets, self.count

        @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64), tf.TensorSpec([None], tf.int64)])
        def prepare(epoch_seed, batch_index, batch_rows):
            batch_targets = tf.gather(all_targets, batch_rows)
            batch_seed = tf.stack([epoch_seed, batch_index])
            if mirror:
                batch_rows += tf.cast(augmentation.flip_mask(batch_seed, tf.size(batch_rows)), tf.int64) * count
            batch_images = tf.cast(tf.gather(all_images, batch_rows)[..., None], tf.float32) / 255.0
            if augment:
                batch_images = augmentation.augment_batch(batch_images, batch_seed, augment)
            if crop:
                batch_images = augmentation.random_crop(batch_images, batch_seed, crop)
            if mixup_alpha > 0:
                batch_images, batch_targets = augmentation.mixup(batch_images, batch_targets, batch_seed, mixup_alpha)
            return batch_images, batch_targets

        self._prepare_functions[key] = prepare
        return prepare


def hide_length(dataset) -> tuple:
    """(``dataset`` with its number of batches hidden from Keras, that number), for ``model.fit``
    given the number as ``steps_per_epoch`` or ``validation_steps``: it then makes one iterator
    over the dataset per fit. Knowing the length itself, Keras makes the next epoch's iterator as
    soon as an epoch ends, which a fit of one epoch throws away: for the augmented pipeline about
    60 ms of TensorFlow instantiating its batch function, and the batches its prefetch made."""
    steps = int(dataset.cardinality())
    if steps < 0:
        raise ValueError(f"hide_length needs a dataset of known length, got cardinality {steps}")
    return dataset.filter(lambda *batch: True), steps


def learning_rate_schedule(settings: dict, steps_per_epoch: int):
    """Constant learning rate, or linear warm-up followed by cosine decay to zero."""
    import keras

    peak = settings["learning_rate"]
    if settings["schedule"] == "constant":
        return peak
    if settings["schedule"] == "cosine":
        warmup_steps = int(settings["warmup_epochs"] * steps_per_epoch)
        decay_steps = max(settings["epochs"] * steps_per_epoch - warmup_steps, 1)
        initial = 0.0 if warmup_steps else peak
        return keras.optimizers.schedules.CosineDecay(initial, decay_steps, warmup_target=peak if warmup_steps else None, warmup_steps=warmup_steps)
    raise ValueError(f"unknown schedule {settings['schedule']!r} (use 'constant' or 'cosine')")


def make_optimizer(settings: dict, steps_per_epoch: int):
    import keras

    rate = learning_rate_schedule(settings, steps_per_epoch)
    name = settings["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=settings["weight_decay"] or None)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=settings["weight_decay"])
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=settings["weight_decay"] or None)
    raise ValueError(f"unknown optimizer {name!r} (use 'adam', 'adamw' or 'sgd')")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build layers under the Keras dtype policy ``name`` ('float32' or 'mixed_bfloat16')."""
    import keras

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_model(settings: dict, precision: str = "float32", input_shape=None, batch_norm: str = "keras"):
    """The registered architecture of ``settings``, uncompiled, with layers of ``precision``, for
    48x48 images unless ``input_shape`` says otherwise, and with ``batch_norm`` layers
    (``models.with_batch_norm``)."""
    from emotionnet import models

    with dtype_policy(precision):
        return models.with_batch_norm(models.build(settings["architecture"], input_shape, **settings["hyperparameters"]), batch_norm)


def float32_copy(model, settings: dict):
    """The same architecture and weights with float32 layers for 48x48 images and Keras' own
    batch-norm layers (what is saved and evaluated: loads with plain Keras)."""
    copy = build_model(settings)
    copy.set_weights(model.get_weights())
    return copy


def build_compiled_model(settings: dict, steps_per_epoch: int, steps_per_call: int | None = None):
    """The registered architecture, compiled with the configured optimiser and loss. A model that
    trains on crops takes images of any size: crops in training, whole images in validation. With
    ``sam_rho`` > 0 it trains with sharpness-aware minimisation (``sharpness``)."""
    settings = {**DEFAULTS, **settings}
    input_shape = (None, None, 1) if settings["crop"] else None
    model = build_model(settings, settings["precision"], input_shape, settings["batch_norm"])
    if settings["sam_rho"]:
        from emotionnet import sharpness

        model = sharpness.sharpness_aware(model, settings["sam_rho"])
    return compile_model(model, settings, steps_per_epoch, steps_per_call)


def training_steps_per_call(settings: dict) -> int:
    """How many training steps Keras runs per call into TensorFlow (its ``steps_per_execution``):
    STEPS_PER_CALL, which saves a Python round trip per batch and gives the same weights as one
    step per call (tested); one with weight averaging, which updates from a callback after every
    step."""
    return 1 if settings.get("weight_average_decay") else STEPS_PER_CALL


def compile_model(model, settings: dict, steps_per_epoch: int, steps_per_call: int | None = None):
    """Compile ``model`` with the optimiser, loss and metric of ``settings``; returns it.
    ``steps_per_call``: default ``training_steps_per_call(settings)``."""
    import keras

    model.compile(
        optimizer=make_optimizer(settings, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings["label_smoothing"]),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=settings["jit_compile"],
        steps_per_execution=steps_per_call or training_steps_per_call(settings),
    )
    return model


def class_weights(labels, mode: str):
    """None, or inverse-frequency weights ('balanced') or their square root ('sqrt')."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=len(data.EMOTIONS)).astype(float)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise ValueError(f"unknown class_weight {mode!r} (use 'none', 'balanced' or 'sqrt')")
    return {index: float(weight) for index, weight in enumerate(weights)}


def fingerprint(settings: dict, seed: int, train_labels, val_labels, targets=None) -> str:
    """Identifies a training run; a checkpoint is resumed only by the run that wrote it (same
    settings, seed, data and the builders' ``models.LAYOUT_VERSION``)."""
    from emotionnet import models

    content = json.dumps({"settings": settings, "seed": seed, "train": train_labels.tolist(), "val": val_labels.tolist(), "layout": models.LAYOUT_VERSION}, sort_keys=True)
    digest = hashlib.sha256(content.encode())
    if targets is not None:
        digest.update(np.ascontiguousarray(targets, np.float32).tobytes())
    return digest.hexdigest()[:16]


def random_states(model):
    """The state variables of the layers that draw random numbers (Dropout's seed generators)."""
    return [variable for variable in model.non_trainable_variables if "seed_generator_state" in variable.path]


class Checkpoint:
    """The per-epoch state of a run in its own folder: last model (with optimiser), best weights,
    and a JSON file with the history so far. Written atomically: the JSON is replaced last."""

    def __init__(self, folder, run_id: str):
        self.folder = Path(folder)
        self.run_id = run_id
        self.state_path = self.folder / "state.json"
        self.model_path = self.folder / "last.keras"
        self.best_path = self.folder / "best.weights.h5"
        self.average_path = self.folder / "average.npz"

    def load(self):
        """(model, state) of a matching earlier run, or None."""
        import keras

        from emotionnet import models, sharpness  # noqa: F401 - register FusedBatchNormalization and SharpnessAwareModel for loading

        if not self.state_path.exists():
            return None
        state = json.loads(self.state_path.read_text())
        if state.get("run_id") != self.run_id or not self.model_path.exists():
            log.info("ignoring checkpoint in %s: it belongs to a different configuration", self.folder)
            return None
        model = keras.saving.load_model(self.model_path, safe_mode=True)
        # Keras does not restore the seed generators' state: without this, a resumed run would
        # drop other units than an uninterrupted one
        for variable, value in zip(random_states(model), state.get("random_states", []), strict=False):
            variable.assign(np.array(value, dtype=variable.dtype))
        return model, state

    def save(self, model, state: dict, improved: bool, average=None):
        """``average``: the run's WeightAverage, if any; its weights are the ones kept as best."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model_partial = data.atomic_path(self.model_path)
        model.save(model_partial)
        if average is not None:
            average_partial = data.atomic_path(self.average_path)
            average.save(average_partial)
        if improved:
            best_partial = data.atomic_path(self.best_path)
            with average.in_model() if average is not None else contextlib.nullcontext():
                model.save_weights(best_partial)
        state_partial = data.atomic_path(self.state_path)
        seed_states = [np.asarray(variable).tolist() for variable in random_states(model)]
        state_partial.write_text(json.dumps({**state, "random_states": seed_states, "run_id": self.run_id}, indent=1))
        os.replace(model_partial, self.model_path)
        if average is not None:
            os.replace(average_partial, self.average_path)
        if improved:
            os.replace(best_partial, self.best_path)
        os.replace(state_partial, self.state_path)

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def _epoch_row(epoch, logs, learning_rate, epoch_seconds, elapsed):
    return {
        "epoch": epoch + 1,
        "loss": float(logs["loss"][-1]),
        "accuracy": float(logs["accuracy"][-1]),
        "val_loss": float(logs["val_loss"][-1]),
        "val_accuracy": float(logs["val_accuracy"][-1]),
        "learning_rate": learning_rate,
        "epoch_seconds": round(epoch_seconds, 3),
        "elapsed_seconds": round(elapsed, 3),
    }


def _current_learning_rate(model) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class TrainingMemoryError(MemoryError):
    """Training needed more memory than its budget; nothing was written."""


def _memory_guard(budget_mb: float | None):
    """A Keras callback that stops training once this process's resident memory passes
    ``budget_mb`` (checked after every call into TensorFlow: every ``training_steps_per_call``
    steps), so that a job over budget ends with a clear message instead of being killed by the
    system mid-write. None: no budget."""
    import keras
    import psutil

    class MemoryGuard(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.process, self.exceeded_mb = psutil.Process(), None

        def on_train_batch_end(self, batch, logs=None):
            resident_mb = self.process.memory_info().rss / 2**20
            if budget_mb is not None and resident_mb > budget_mb:
                self.exceeded_mb = resident_mb
                self.model.stop_training = True

    return MemoryGuard()


def _fit_epoch(model, train_dataset, val_dataset, epoch: int, class_weight, memory_budget_mb, callbacks=()):
    """One epoch of ``model.fit`` with the extra Keras ``callbacks``; raises a clear error on NaN
    loss, on running over the memory budget, or when TensorFlow cannot allocate memory. Nothing is
    saved in those cases."""
    import keras
    import tensorflow as tf

    guard = _memory_guard(memory_budget_mb)
    try:
        (train_batches, train_steps), (val_batches, val_steps) = hide_length(train_dataset), hide_length(val_dataset)
        logs = model.fit(train_batches, steps_per_epoch=train_steps, validation_data=val_batches, validation_steps=val_steps, epochs=epoch + 1, initial_epoch=epoch, class_weight=class_weight, shuffle=False, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN(), guard, *callbacks]).history
    except (tf.errors.ResourceExhaustedError, MemoryError) as error:
        raise TrainingMemoryError(f"out of memory in epoch {epoch + 1}: {str(error).splitlines()[0][:200]}; no model was written (lower batch_size, or give the job more memory)") from None
    if guard.exceeded_mb is not None:
        raise TrainingMemoryError(f"memory use reached {guard.exceeded_mb:.0f} MB in epoch {epoch + 1}, over the job's budget of {memory_budget_mb:.0f} MB (resources mem_mb); no model was written (lower batch_size, or raise mem_mb)")
    if not np.isfinite(logs["loss"][-1]) or model.stop_training:
        raise FloatingPointError(f"training diverged: the loss became {logs['loss'][-1]} in epoch {epoch + 1}; no model was written (lower the learning rate?)")
    return logs


def _weight_average(model, decay, resumed_checkpoint):
    """None without ``decay``; else the model's WeightAverage, restored from a resumed checkpoint."""
    if not decay:
        return None
    from emotionnet import averaging

    average = averaging.WeightAverage(model, decay)
    if resumed_checkpoint is not None:
        average.load(resumed_checkpoint.average_path)
    return average


def teacher_probabilities(paths):
    """The mean of the teacher members' stored training-set probabilities (``.npy`` files of shape
    (n, 7), rule teacher_probabilities); None without paths."""
    if not paths:
        return None
    members = [np.load(path) for path in paths]
    shapes = {member.shape for member in members}
    if len(shapes) != 1:
        raise ValueError(f"teacher probabilities differ in shape: {', '.join(f'{path} {member.shape}' for path, member in zip(paths, members))}")
    return np.mean(members, axis=0, dtype=np.float64).astype(np.float32)


def distillation_targets(train_labels, teacher_probabilities, weight: float):
    """Training targets of a distilled model: ``weight`` x the teacher's probabilities (n, 7) plus
    (1 - ``weight``) x the one-hot labels; None (plain labels) when ``weight`` is 0."""
    if not weight:
        return None
    if teacher_probabilities is None or len(teacher_probabilities) != len(train_labels):
        found = "none" if teacher_probabilities is None else f"{len(teacher_probabilities)} rows"
        raise ValueError(f"distillation needs the teacher's probabilities for all {len(train_labels)} training images; got {found}")
    return (weight * np.asarray(teacher_probabilities, np.float32) + (1 - weight) * one_hot(train_labels)).astype(np.float32)


def train(train_images, train_labels, val_images, val_labels, *, settings: dict, seed: int, checkpoint_dir, threads: int = 1, deterministic: bool = True, memory_budget_mb: float | None = None, teacher_probabilities=None):
    """Train a model as ``settings`` describe; returns (model with best-val weights, history rows).
    A mixed-precision, crop, fused batch-norm or sharpness-aware run returns a float32 copy of its
    model for 48x48 images with Keras' own layers (a plain Keras model).

    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same run. Stops with
    TrainingMemoryError when the process's memory passes ``memory_budget_mb``. With
    ``weight_average_decay``, validation and the kept weights are the moving average of the
    weights (``averaging.WeightAverage``). With ``distillation`` > 0 the targets blend the labels
    with ``teacher_probabilities`` (see ``distillation_targets``)."""
    from emotionnet import models

    settings = {**DEFAULTS, **settings}
    runtime.configure(threads=threads, seed=seed, deterministic=deterministic)
    steps_per_epoch = math.ceil(len(train_images) / settings["batch_size"])
    targets = distillation_targets(train_labels, teacher_probabilities, settings["distillation"])
    checkpoint = Checkpoint(checkpoint_dir, fingerprint(settings, seed, train_labels, val_labels, targets))
    resumed = checkpoint.load()
    if resumed:
        model, state = resumed
        log.info("resuming from epoch %d (checkpoint in %s)", len(state["history"]), checkpoint.folder)
    else:
        model = build_compiled_model(settings, steps_per_epoch)
        state = {"history": [], "best_val_accuracy": -1.0, "epochs_without_improvement": 0}
    average = _weight_average(model, settings["weight_average_decay"], checkpoint if resumed else None)
    callbacks = [average.callback()] if average else []
    log.info("%s: %d parameters, %d train and %d val images, %d epochs of %d steps", settings["architecture"], model.count_params(), len(train_images), len(val_images), settings["epochs"], steps_per_epoch)
    val_dataset = make_dataset(val_images, val_labels, 512)
    weights = class_weights(train_labels, settings["class_weight"])
    elapsed_before = state["history"][-1]["elapsed_seconds"] if state["history"] else 0.0
    pipeline_images = PipelineImages(train_images, train_labels, targets)
    for epoch in range(len(state["history"]), settings["epochs"]):
        started = time.perf_counter()
        train_dataset = pipeline_images.batches(settings["batch_size"], seed=seed, epoch=epoch, augment=settings["augment"], mixup_alpha=settings["mixup"], crop=settings["crop"])
        logs = _fit_epoch(model, train_dataset, val_dataset, epoch, weights, memory_budget_mb, callbacks)
        epoch_seconds = time.perf_counter() - started
        elapsed_before += epoch_seconds
        row = _epoch_row(epoch, logs, _current_learning_rate(model), epoch_seconds, elapsed_before)
        state["history"].append(row)
        improved = row["val_accuracy"] > state["best_val_accuracy"]
        if improved:
            state["best_val_accuracy"] = row["val_accuracy"]
            state["epochs_without_improvement"] = 0
        else:
            state["epochs_without_improvement"] += 1
        checkpoint.save(model, state, improved, average)
        log.info("epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.1f s%s", row["epoch"], settings["epochs"], row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"], row["learning_rate"], epoch_seconds, "  (best)" if improved else "")
        patience = settings["early_stopping_patience"]
        if patience is not None and state["epochs_without_improvement"] >= patience:
            log.info("early stopping: val accuracy has not improved for %d epochs", patience)
            break
    model.load_weights(checkpoint.best_path)
    if settings["precision"] != "float32" or settings["crop"] or settings["sam_rho"] or models.has_fused_batch_norm(model):
        model = float32_copy(model, settings)
    return model, state["history"]


def write_outputs(trained_model, history_rows, *, model, weights, history, info, settings):
    """Write the model, its weights, the history CSV and a JSON of its size and settings, each
    atomically (paths are the train rule's outputs)."""
    from emotionnet import models

    savers = {Path(model): trained_model.save, Path(weights): trained_model.save_weights}
    for path, save in savers.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = data.atomic_path(path)
        save(partial)
        os.replace(partial, path)
    partial = data.atomic_path(history)
    with open(partial, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history_rows)
    os.replace(partial, history)
    summary = {"architecture": settings["architecture"], "params": int(trained_model.count_params()), "macs": models.multiply_adds(trained_model), "settings": {**DEFAULTS, **settings}}
    partial = data.atomic_path(info)
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, info)
