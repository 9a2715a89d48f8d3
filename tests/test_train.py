"""Training settings: the learning-rate schedule, the optimisers, class weights, which epoch's
weights are kept and when early stopping stops."""

import keras
import numpy as np
import pytest
from conftest import learnable_images

from emotionnet import train


def _cosine(peak=0.1, warmup_epochs=2, epochs=10):
    return {**train.DEFAULTS, "schedule": "cosine", "learning_rate": peak, "warmup_epochs": warmup_epochs, "epochs": epochs}


def test_cosine_warmup_rises_linearly_from_zero_to_the_peak():
    schedule = train.learning_rate_schedule(_cosine(), steps_per_epoch=5)  # 10 warm-up steps
    rates = [float(schedule(step)) for step in (0, 5, 10)]
    np.testing.assert_allclose(rates, [0.0, 0.05, 0.1], atol=1e-7)


def test_cosine_decay_reaches_zero_at_the_last_step_after_warmup():
    schedule = train.learning_rate_schedule(_cosine(), steps_per_epoch=5)  # 50 steps: 10 warm-up, 40 decay
    np.testing.assert_allclose(float(schedule(30)), 0.05, atol=1e-6)  # half-way through the decay
    np.testing.assert_allclose(float(schedule(50)), 0.0, atol=1e-7)
    without_warmup = train.learning_rate_schedule(_cosine(warmup_epochs=0), steps_per_epoch=5)
    np.testing.assert_allclose([float(without_warmup(0)), float(without_warmup(50))], [0.1, 0.0], atol=1e-7)


def test_an_unknown_schedule_is_refused_not_taken_as_cosine():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        train.learning_rate_schedule({**train.DEFAULTS, "schedule": "cosin"}, steps_per_epoch=1)


def test_sgd_takes_a_nesterov_momentum_step():
    weights = keras.Variable(np.ones(1, np.float32))
    optimizer = train.make_optimizer({**train.DEFAULTS, "optimizer": "sgd", "learning_rate": 0.1}, steps_per_epoch=1)
    optimizer.apply_gradients([(np.ones(1, np.float32), weights)])
    # velocity v = -lr g = -0.1; Nesterov step: momentum v - lr g = -0.09 - 0.1
    np.testing.assert_allclose(weights.numpy(), [1 - 0.19], rtol=1e-6)


def test_balanced_class_weights_are_inverse_frequency_for_all_seven_classes():
    labels = np.array([0, 0, 0, 1])  # classes 2-6 absent
    weights = train.class_weights(labels, "balanced")
    assert sorted(weights) == list(range(7))
    np.testing.assert_allclose([weights[k] for k in range(7)], [4 / 21, 4 / 7, 4 / 7, 4 / 7, 4 / 7, 4 / 7, 4 / 7])
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)  # each present class weighs the same in total
    root = train.class_weights(labels, "sqrt")
    np.testing.assert_allclose([root[k] for k in range(7)], np.sqrt([weights[k] for k in range(7)]))
    assert train.class_weights(labels, "none") is None


def test_an_unknown_class_weight_mode_is_refused():
    with pytest.raises(ValueError, match="unknown class_weight 'balance'"):
        train.class_weights(np.array([0, 1, 2]), "balance")


def _scripted_run(monkeypatch, tmp_path, val_accuracies, patience=None):
    """train.train with each epoch's fit replaced: epoch e sets every weight to e + 1 and reports
    val_accuracies[e]. Returns (the epoch whose weights the returned model holds, history epochs)."""

    def fake_fit(model, train_dataset, val_dataset, epoch, class_weight, memory_budget_mb, callbacks=()):
        model.set_weights([np.full(w.shape, epoch + 1, w.dtype) for w in model.get_weights()])
        return {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [val_accuracies[epoch]]}

    monkeypatch.setattr(train, "_fit_epoch", fake_fit)
    images, labels = learnable_images(32)
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [4], "convs_per_stage": 1}, "epochs": len(val_accuracies), "batch_size": 16, "early_stopping_patience": patience}
    model, history = train.train(images, labels, images[:16], labels[:16], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    return int(model.get_weights()[0].flat[0]), [row["epoch"] for row in history]


def test_the_model_keeps_the_first_epoch_of_best_validation_accuracy(monkeypatch, tmp_path):
    kept, epochs = _scripted_run(monkeypatch, tmp_path, [0.2, 0.6, 0.6, 0.4])
    assert epochs == [1, 2, 3, 4]
    assert kept == 2  # not the tie in epoch 3, not the last epoch


def test_early_stopping_stops_after_patience_epochs_without_improvement(monkeypatch, tmp_path):
    kept, epochs = _scripted_run(monkeypatch, tmp_path, [0.5, 0.4, 0.3, 0.2, 0.1, 0.9], patience=2)
    assert epochs == [1, 2, 3] and kept == 1


def test_a_checkpoint_of_another_layer_layout_is_not_resumed(monkeypatch):
    from emotionnet import models

    labels = np.arange(20) % 7
    before = train.fingerprint(dict(train.DEFAULTS), 0, labels, labels[:7])
    assert train.fingerprint(dict(train.DEFAULTS), 0, labels, labels[:7]) == before
    monkeypatch.setattr(models, "LAYOUT_VERSION", models.LAYOUT_VERSION + 1)
    assert train.fingerprint(dict(train.DEFAULTS), 0, labels, labels[:7]) != before
