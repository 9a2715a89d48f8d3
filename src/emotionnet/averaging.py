"""Exponential moving average (EMA) of a model's trainable weights while it trains.

Training steps update the live weights; after each step the average moves towards them. The
validation pass of every epoch and the kept best checkpoint use the averaged weights, which are
usually smoother and more accurate than the weights of any single step. The decay warms up
(min(decay, (1 + step) / (10 + step))) so that early averages do not hold the random
initialisation. Batch-norm statistics are not averaged (they are moving averages already)."""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf


class WeightAverage:
    """The averaged copies of ``model``'s trainable weights (float32, like the weights)."""

    def __init__(self, model, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"weight_average_decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self._variables = model.trainable_variables
        self.averages = [tf.Variable(tf.identity(variable.value), trainable=False) for variable in self._variables]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function
    def update(self):
        """Move every average towards its live weight by one step."""
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for average, variable in zip(self.averages, self._variables, strict=True):
            average.assign(decay * average + (1.0 - decay) * variable.value)
        self.step.assign_add(1)

    @tf.function
    def swap(self):
        """Exchange the live weights and the averages."""
        for average, variable in zip(self.averages, self._variables, strict=True):
            live = tf.identity(variable.value)
            variable.assign(average)
            average.assign(live)

    @contextlib.contextmanager
    def in_model(self):
        """The averaged weights in the model for the duration of the block."""
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def callback(self):
        """A Keras callback: update after every training step, validate with the averages."""
        import keras

        average = self

        class AverageWeights(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                average.update()

            def on_test_begin(self, logs=None):
                average.swap()

            def on_test_end(self, logs=None):
                average.swap()

        return AverageWeights()

    def save(self, path):
        """Write the averages and the step count to ``path`` (.npz)."""
        arrays = {f"average_{index}": average.numpy() for index, average in enumerate(self.averages)}
        with open(path, "wb") as stream:
            np.savez(stream, step=self.step.numpy(), **arrays)

    def load(self, path):
        """Restore what ``save`` wrote."""
        with np.load(path, allow_pickle=False) as stored:
            for index, average in enumerate(self.averages):
                average.assign(stored[f"average_{index}"])
            self.step.assign(stored["step"])
