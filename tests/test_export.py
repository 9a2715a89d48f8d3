"""`emotionnet export`: every format round-trips within tolerance of the Keras model, and a failed
export leaves nothing."""

from pathlib import Path

import numpy as np
import pytest

from emotionnet import cli, export, models


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "compact.keras"
    model = models.build("mini_xception")
    # move batch-norm statistics away from their defaults so the export must carry them over
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.moving_mean.assign(np.random.default_rng(0).normal(0, 0.1, layer.moving_mean.shape))
    model.save(path)
    return path


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "savedmodel", "keras"])
def test_export_round_trips(model_file, tmp_path, fmt, capsys):
    out = tmp_path / f"exported{export.SUFFIXES[fmt]}"
    assert cli.main(["export", str(model_file), "--format", fmt, "--out", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    assert out.exists()
    inputs = export.sample_inputs(5, seed=3)
    expected = np.asarray(models.load(model_file)(inputs, training=False))
    outputs = export.run_exported(out, fmt, inputs)
    assert outputs.shape == (5, 7)
    np.testing.assert_allclose(outputs, expected, atol=1e-4)


def test_export_fails_above_the_tolerance(model_file, tmp_path, capsys):
    code = cli.main(["export", str(model_file), "--format", "tflite", "--out", str(tmp_path / "m.tflite"), "--tolerance", "0"])
    assert code == 1 and "above the tolerance 0;" in capsys.readouterr().err


@pytest.mark.parametrize(("tolerance", "shown"), [([], "0.0001"), (["--tolerance", "0.00015"], "0.00015")], ids=["default_1e-4", "given"])
def test_an_export_over_the_tolerance_is_removed_naming_the_tolerance(model_file, tmp_path, monkeypatch, capsys, tolerance, shown):
    monkeypatch.setattr(export, "verify", lambda *arguments: 2e-4)   # just over both tolerances
    out = tmp_path / "slim.keras"
    assert cli.main(["export", str(model_file), "--format", "keras", "--out", str(out), *tolerance]) == 1
    assert f"differs from Keras by 2.00e-04 on sample inputs, above the tolerance {shown}; {out} removed" in capsys.readouterr().err and not out.exists()


def test_a_checked_export_within_the_tolerance_is_kept_and_one_above_it_removed(model_file, tmp_path, monkeypatch):
    out, difference = export.export_checked(model_file, "savedmodel", tmp_path / "kept", tolerance=1e-4)
    assert out == tmp_path / "kept" and out.is_dir() and 0 <= difference <= 1e-4
    monkeypatch.setattr(export, "verify", lambda *arguments: 0.5)
    with pytest.raises(export.ExportMismatch, match=r"savedmodel model differs from Keras by 5.00e-01 on sample inputs, above the tolerance 0.25; .*removed"):
        export.export_checked(model_file, "savedmodel", tmp_path / "refused", tolerance=0.25)
    assert not (tmp_path / "refused").exists()


def test_a_checked_export_with_a_nan_difference_or_a_failed_check_leaves_nothing(model_file, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "verify", lambda *arguments: float("nan"))
    with pytest.raises(export.ExportMismatch, match="by nan on sample inputs"):
        export.export_checked(model_file, "keras", tmp_path / "nan.keras")
    assert not (tmp_path / "nan.keras").exists()

    def broken_check(*arguments):
        raise OSError("cannot load the exported model")

    monkeypatch.setattr(export, "verify", broken_check)
    with pytest.raises(OSError, match="cannot load"):
        export.export_checked(model_file, "keras", tmp_path / "unchecked.keras")
    assert not (tmp_path / "unchecked.keras").exists()


def test_inference_keras_copy_drops_the_optimiser_state(tmp_path):
    from emotionnet import train

    settings = {**train.DEFAULTS, "architecture": "mini_xception", "optimizer": "adamw"}
    model = train.build_compiled_model(settings, 10)
    images = np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32)
    model.fit(images, np.eye(7, dtype=np.float32)[np.arange(8) % 7], epochs=1, verbose=0)
    full = tmp_path / "full.keras"
    model.save(full)
    slim = export.export(full, "keras", tmp_path / "slim.keras")
    assert slim.stat().st_size < 0.6 * full.stat().st_size
    np.testing.assert_array_equal(export.run_exported(slim, "keras", images), np.asarray(model(images, training=False)))


def test_default_export_path_replaces_the_keras_suffix():
    assert export.default_output("models/compact.keras", "onnx") == Path("models/compact.onnx")
    assert export.default_output("models/compact.keras", "savedmodel") == Path("models/compact_savedmodel")
    assert export.default_output("models/compact.keras", "keras") == Path("models/compact_inference.keras")


def test_sample_inputs_are_reproducible_per_seed_and_span_zero_to_one():
    first, again, other = export.sample_inputs(16, seed=0), export.sample_inputs(16, seed=0), export.sample_inputs(16, seed=1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (16, 48, 48, 1) and first.dtype == np.float32
    assert first.min() == 0.0 and first.max() == 1.0
    np.testing.assert_array_equal(np.round(first * 255) / 255, first)  # whole grey levels over 255


def test_remove_deletes_a_savedmodel_folder_and_a_file(tmp_path):
    folder = tmp_path / "m_savedmodel"
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "variables.index").write_bytes(b"x")
    single = tmp_path / "m.onnx"
    single.write_bytes(b"x")
    export.remove(folder)
    export.remove(single)
    export.remove(tmp_path / "never_written.tflite")
    assert list(tmp_path.iterdir()) == []


def test_savedmodel_export_replaces_an_old_folder_entirely(model_file, tmp_path):
    out = tmp_path / "m_savedmodel"
    out.mkdir()
    (out / "stale_from_an_older_export.txt").write_text("old")
    assert export.export(model_file, "savedmodel", out) == out
    assert not (out / "stale_from_an_older_export.txt").exists()
    inputs = export.sample_inputs(2)
    np.testing.assert_allclose(export.run_exported(out, "savedmodel", inputs), np.asarray(models.load(model_file)(inputs, training=False)), atol=1e-4)


def test_an_exact_export_passes_a_zero_tolerance(model_file, tmp_path, capsys):
    out = tmp_path / "slim.keras"
    assert cli.main(["export", str(model_file), "--format", "keras", "--out", str(out), "--tolerance", "0"]) == 0
    assert out.exists()
