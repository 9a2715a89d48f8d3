"""Sharpness-aware minimisation (SAM, Foret et al. 2021): each training step first moves the weights
by ``rho`` along the normalised gradient (towards a higher loss), takes the gradient there, and
applies that gradient to the original weights. A step costs two forward and backward passes; it
looks for minima whose whole neighbourhood has a low loss, which the paper found to generalise
better, most of all with noisy labels (as FER2013's are)."""

from __future__ import annotations

import keras
import tensorflow as tf

from emotionnet import train


@keras.saving.register_keras_serializable(package="emotionnet")
class SharpnessAwareModel(keras.Model):
    """A functional model (``SharpnessAwareModel(inputs=..., outputs=..., rho=...)``) whose
    training step is SAM's; prediction and evaluation are the plain model's. As in the reference
    implementation, the second pass changes no state: it drops the same units as the first (the
    dropout seeds are rewound) and its batch-norm moving statistics are discarded. So the state
    after a step is that of a plain step, and the logged loss and metrics are the first pass's.

    In mixed bfloat16 the moved weights are rounded to bfloat16 for the second pass, whose steps
    (about 1/256 of a weight) are larger than most weights' share of a small ``rho``: there the
    perturbation reaches the second pass only partly."""

    def __init__(self, *args, rho: float = 0.05, **kwargs):
        super().__init__(*args, **kwargs)
        if not rho > 0:
            raise ValueError(f"SAM needs rho > 0, got {rho!r}")
        self.rho = float(rho)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}

    def _loss_and_gradients(self, x, y, sample_weight):
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        return y_pred, loss, tape.gradient(loss, self.trainable_weights)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        seeds = train.random_states(self)
        seed_ids = {id(variable) for variable in seeds}
        statistics = [variable for variable in self.non_trainable_variables if id(variable) not in seed_ids]  # e.g. batch-norm moving statistics
        seeds_before = [tf.identity(variable) for variable in seeds]
        y_pred, loss, gradients = self._loss_and_gradients(x, y, sample_weight)
        # as Keras' own step does (a private attribute: the compiled loss tracker)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        statistics_after = [tf.identity(variable) for variable in statistics]
        scale = self.rho / (tf.linalg.global_norm(gradients) + 1e-12)
        steps = [gradient * scale for gradient in gradients]
        for weight, step in zip(self.trainable_weights, steps, strict=True):
            weight.assign_add(step)
        seeds_after = [tf.identity(variable) for variable in seeds]
        for variable, value in zip(seeds, seeds_before, strict=True):
            variable.assign(value)
        _, _, sharp_gradients = self._loss_and_gradients(x, y, sample_weight)
        for variable, value in zip([*seeds, *statistics], [*seeds_after, *statistics_after], strict=True):
            variable.assign(value)
        for weight, step in zip(self.trainable_weights, steps, strict=True):
            weight.assign_sub(step)
        self.optimizer.apply_gradients(zip(sharp_gradients, self.trainable_weights, strict=True))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def sharpness_aware(model, rho: float):
    """``model`` (functional or Sequential) as a SharpnessAwareModel sharing its layers and weights."""
    (inputs,), (outputs,) = model.inputs, model.outputs  # single tensors, as the model was built (Sequential too)
    return SharpnessAwareModel(inputs=inputs, outputs=outputs, name=model.name, rho=rho)
