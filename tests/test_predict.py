"""`emotionnet predict` on real and broken images, the image loader behind it, and `emotionnet evaluate`'s arguments."""

import json
import struct
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image, ImageFile
from conftest import csv_text

from emotionnet import cli, models, predict


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small untrained model saved as .keras (predictions need only be well-formed here)."""
    path = tmp_path_factory.mktemp("model") / "compact.keras"
    models.build("mini_xception").save(path)
    return path


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    """A real photograph with one face, shipped by scikit-image."""
    from skimage import data as skimage_data

    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(path, quality=92)
    return path


def _run(arguments, capsys):
    code = cli.main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_astronaut_gives_one_well_formed_record_and_an_annotated_copy(astronaut, model_file, tmp_path, capsys):
    code, out, _ = _run(["predict", str(astronaut), "--model", str(model_file), "--out", str(tmp_path)], capsys)
    assert code == 0, out
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == 1
    record = records[0]
    assert record["file"] == str(astronaut) and record["emotion"] in {"Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"}
    probabilities = [record[name] for name in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    # the astronaut's face is in the upper middle of the 512x512 photo
    assert 120 < record["x"] + record["width"] / 2 < 300 and 40 < record["y"] + record["height"] / 2 < 200
    annotated = Image.open(tmp_path / "astronaut_annotated.png")
    assert annotated.size == (512, 512) and annotated.mode == "RGB"


def test_csv_records_and_no_detect(astronaut, model_file, tmp_path, capsys):
    code, _, _ = _run(["predict", str(astronaut), "--model", str(model_file), "--out", str(tmp_path), "--format", "csv", "--no-detect"], capsys)
    assert code == 0
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("file,face,x,y,width,height,emotion,angry")
    assert lines[1].split(",")[2:6] == ["0", "0", "512", "512"]  # the whole image is the face
    assert lines[0].endswith(",neutral,annotated") and lines[1].endswith(",astronaut_annotated.png")
    code, _, _ = _run(["predict", str(astronaut), "--model", str(model_file), "--out", str(tmp_path / "bare"), "--format", "csv", "--no-annotate"], capsys)
    assert code == 0 and not list((tmp_path / "bare").glob("*.png"))
    assert (tmp_path / "bare" / "predictions.csv").read_text().splitlines()[1].endswith(",")  # no annotated copy named


def _png_claiming_size(path, width, height):
    """A tiny PNG whose header claims width x height pixels (a decompression-bomb shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    body = zlib.compress(b"\x00" * 10)
    idat = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + idat + iend)
    return path


@pytest.fixture
def bad_files(tmp_path, astronaut):
    folder = tmp_path / "bad"
    folder.mkdir()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(astronaut.read_bytes()[:2000])
    (folder / "notes.jpg").write_text("this is not an image\n")
    (folder / "empty.png").write_bytes(b"")
    _png_claiming_size(folder / "bomb.png", 100_000, 100_000)
    Image.new("L", (200, 200), 128).save(folder / "blank.png")  # readable, but no face
    return folder


def test_bad_files_get_a_message_each_and_the_good_one_is_still_processed(bad_files, astronaut, model_file, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = _run(["predict", str(bad_files), str(astronaut), "--model", str(model_file), "--out", str(out_dir)], capsys)
    assert code == 1
    for name, reason in [("truncated.jpg", "not a readable image"), ("notes.jpg", "not a readable image"), ("empty.png", "not a readable image"), ("bomb.png", "too large"), ("blank.png", "no face found (for an image that is already a cropped face, use --no-detect")]:
        assert any(name in line and reason in line for line in err.splitlines()), (name, err)
    records = json.loads((out_dir / "predictions.json").read_text())
    assert [record["file"] for record in records] == [str(astronaut)]
    assert "1 face(s) in 1 of 6 image(s)" in out


def test_missing_model_and_empty_input_are_clear_errors(tmp_path, capsys):
    code, _, err = _run(["predict", str(tmp_path), "--model", str(tmp_path / "nope.keras")], capsys)
    assert code == 2 and "nope.keras not found" in err
    model = tmp_path / "m.keras"
    models.build("seed").save(model)
    code, _, err = _run(["predict", str(tmp_path), "--model", str(model)], capsys)
    assert code == 2 and f"no image files (.bmp, .gif, .jpeg, .jpg, .pgm, .png, .ppm, .tif, .tiff, .webp) in {tmp_path}" in err


def test_input_and_output_mistakes_fail_before_the_model_loads(astronaut, tmp_path, capsys):
    junk = tmp_path / "junk.keras"   # loading it would fail: these errors must come first
    junk.write_text("not a model")
    out_dir = tmp_path / "out"
    code, _, err = _run(["predict", str(astronaut), str(tmp_path / "nosuch.jpg"), "--model", str(junk), "--out", str(out_dir)], capsys)
    assert code == 2 and err == f"error: no such file or folder: {tmp_path / 'nosuch.jpg'}\n" and not out_dir.exists()
    a_file = tmp_path / "afile"
    a_file.write_text("")
    code, _, err = _run(["predict", str(astronaut), "--model", str(junk), "--out", str(a_file)], capsys)
    assert code == 2 and err == f"error: --out {a_file} is a file; name a folder for the records and annotated images\n"


def test_input_mistakes_are_reported_without_starting_tensorflow(tmp_path):
    import subprocess
    import sys

    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    (tmp_path / "photos").mkdir()
    for arguments, message in [([str(tmp_path / "photos")], "error: no image files"), ([str(tmp_path / "gone.jpg")], "error: no such file or folder")]:
        script = f"import sys; from emotionnet import cli; code = cli.main(['predict', *{arguments!r}, '--model', {str(junk)!r}]); print(code, 'tensorflow' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert result.stdout.split() == ["2", "False"] and result.stderr.startswith(message)


def test_when_no_image_gives_a_face_nothing_is_written(model_file, tmp_path, capsys):
    Image.new("L", (200, 200), 128).save(tmp_path / "blank.png")
    (tmp_path / "notes.jpg").write_text("not an image")
    inputs = [str(tmp_path / "blank.png"), str(tmp_path / "notes.jpg"), "--model", str(model_file)]
    new_folders = tmp_path / "new" / "out"
    code, _, err = _run(["predict", *inputs, "--out", str(new_folders)], capsys)
    assert code == 1 and "no face classified in 2 image(s); nothing written" in err
    assert not (tmp_path / "new").exists()   # neither the folder nor the parent the run created
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "predictions.json").write_text('[{"file": "from an earlier run"}]')
    code, _, err = _run(["predict", *inputs, "--out", str(existing)], capsys)
    assert code == 1 and f"{existing / 'predictions.json'} holds no records" in err
    assert json.loads((existing / "predictions.json").read_text()) == []   # not the earlier run's records


def test_a_file_that_is_not_a_model_is_named_as_such(astronaut, tmp_path, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    code, _, err = _run(["predict", str(astronaut), "--model", str(junk)], capsys)
    assert code == 2 and f"{junk}: not a Keras model file" in err
    # evaluate checks the model before it parses the CSV (which does not exist here either)
    code, _, err = _run(["evaluate", str(tmp_path / "typo.keras"), str(tmp_path / "no.csv")], capsys)
    assert code == 2 and f"{tmp_path / 'typo.keras'}: no such model file" in err


def test_a_missing_default_model_says_where_its_path_came_from(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOTIONNET_MODEL", str(tmp_path / "gone.keras"))
    code, _, err = _run(["predict", str(tmp_path)], capsys)
    assert code == 2 and "gone.keras not found (named by $EMOTIONNET_MODEL)" in err
    monkeypatch.delenv("EMOTIONNET_MODEL")
    monkeypatch.setattr(predict, "REPO_MODELS", tmp_path / "models")
    code, _, err = _run(["predict", str(tmp_path)], capsys)
    assert code == 2 and "emotionnet-fer2013.keras not found" in err and "name a model with --model or $EMOTIONNET_MODEL" in err


@pytest.mark.parametrize("shift", ["-1", "9", "two", "\u00b2"])
def test_evaluate_refuses_a_crop_shift_outside_0_to_8(shift, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["evaluate", str(tmp_path / "m.keras"), str(tmp_path / "x.csv"), "--tta-crop-shift", shift])
    assert stop.value.code == 2 and f"--tta-crop-shift: {shift!r} is not a whole number of pixels from 0 to 8" in capsys.readouterr().err


@pytest.fixture(scope="module")
def three_split_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    usage = ["Training"] * 5 + ["PublicTest"] * 3 + ["PrivateTest"] * 2
    path = tmp_path_factory.mktemp("csv") / "three.csv"
    path.write_text(csv_text(rng.integers(0, 256, (10, 48, 48)), rng.integers(0, 7, 10), usage))
    return path


@pytest.mark.parametrize(("usage", "count"), [("Training", 5), ("PublicTest", 3), ("PrivateTest", 2)])
def test_evaluate_usage_selects_exactly_that_usages_rows(model_file, three_split_csv, usage, count, capsys):
    assert cli.main(["evaluate", str(model_file), str(three_split_csv), "--usage", usage, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == count


def test_evaluate_usage_without_rows_names_the_csv_and_the_usage(model_file, tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "no_private.csv"
    path.write_text(csv_text(rng.integers(0, 256, (4, 48, 48)), rng.integers(0, 7, 4), ["Training", "Training", "PublicTest", "PublicTest"]))
    assert cli.main(["evaluate", str(model_file), str(path), "--usage", "PrivateTest", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {path} has no rows with Usage PrivateTest\n" and captured.out == ""


def test_evaluate_accepts_the_largest_crop_shift_8(model_file, three_split_csv, capsys):
    assert cli.main(["evaluate", str(model_file), str(three_split_csv), "--json", "--tta-crop-shift", "8"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 10 and "tta_crops" in metrics


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(path)

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(predict.ImageError, match="too large: 300x200 pixels"):
        predict.load_grayscale(path, max_pixels=50_000)


def _gradient(height=40, width=60):
    return (np.arange(height * width).reshape(height, width) % 251).astype(np.uint8)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = _gradient().astype(np.uint16) * 257  # 0..64250
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(predict.load_grayscale(path), _gradient())


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent black
    rgba[:5, :, 3] = 255  # opaque black top half
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    gray = predict.load_grayscale(path)
    assert (gray[:5] == 0).all() and (gray[5:] == 255).all()


def test_palette_and_cmyk_images_match_their_rgb_source(tmp_path):
    rgb = Image.fromarray(np.stack([_gradient(), _gradient()[::-1], np.full((40, 60), 90, np.uint8)], axis=-1), "RGB")
    expected = np.asarray(rgb.convert("L"), dtype=np.int16)
    palette = tmp_path / "palette.png"
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(palette)
    cmyk = tmp_path / "cmyk.tif"
    rgb.convert("CMYK").save(cmyk)
    assert Image.open(palette).mode == "P" and Image.open(cmyk).mode == "CMYK"
    for path in (palette, cmyk):
        gray = predict.load_grayscale(path).astype(np.int16)
        assert gray.shape == (40, 60)
        assert np.abs(gray - expected).mean() < 6, path


def test_exif_rotation_is_applied(tmp_path):
    stored = np.add.outer(np.arange(40) * 3, np.arange(60)).astype(np.uint8)  # smooth: JPEG keeps it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    gray = predict.load_grayscale(path).astype(np.int16)
    assert gray.shape == (60, 40)
    assert np.abs(gray - np.rot90(stored, -1)).mean() < 2  # clockwise
    assert np.abs(gray - np.rot90(stored, 1)).mean() > 20  # not the other way


def test_crop_near_the_border_is_padded_to_a_square_48x48(rng):
    gray = rng.integers(0, 256, (100, 80), dtype=np.uint8)
    crop = predict.crop_face(gray, (60, 70, 30, 30))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # the box grown by 10% per side is 36 px square from (57, 67); rows/columns past the border repeat the edge
    square = gray[np.clip(np.arange(67, 67 + 36), 0, 99)][:, np.clip(np.arange(57, 57 + 36), 0, 79)]
    np.testing.assert_array_equal(crop, predict.whole_image_face(square))


def test_mirror_tta_keeps_the_class_of_a_symmetric_face():
    keras.utils.set_random_seed(4)
    model = models.build("mini_xception")
    half = np.random.default_rng(1).integers(0, 256, (4, 48, 24), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    plain = predict.classify_faces(model, symmetric, tta=False)
    mirrored = predict.classify_faces(model, symmetric, tta=True)
    np.testing.assert_allclose(plain, mirrored, atol=1e-5)
    # an asymmetric face: TTA averages in the mirrored image, so the probabilities do change
    asymmetric = np.concatenate([half, 255 - half], axis=2)
    with_tta = predict.classify_faces(model, asymmetric, tta=True)
    np.testing.assert_allclose(with_tta, (predict.classify_faces(model, asymmetric, tta=False) + predict.classify_faces(model, asymmetric[:, :, ::-1], tta=False)) / 2, atol=1e-5)
    assert np.abs(with_tta - predict.classify_faces(model, asymmetric, tta=False)).max() > 1e-4


def test_annotated_copies_get_distinct_names_in_input_order():
    files = ["a/x.jpg", "b/x.jpg", "x.png", "x_jpg.png", "y.jpg", "c/Y.JPG", "z.jpg"]
    names = predict.annotated_names(files)
    assert names == ["x_jpg_1_annotated.png", "x_jpg_2_annotated.png", "x_png_annotated.png", "x_jpg_annotated.png", "y_jpg_1_annotated.png", "Y_jpg_2_annotated.png", "z_annotated.png"]
    # a name another input's numbering already took gets an underscore more
    assert predict.annotated_names(["p/x.jpg", "q/x.JPG", "x_jpg_1.png"]) == ["x_jpg_1_annotated.png", "x_jpg_2_annotated.png", "x_jpg_1__annotated.png"]


def test_two_photos_with_one_name_in_two_folders_get_two_annotated_copies(astronaut, model_file, tmp_path, capsys):
    for folder in ("one", "two"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "face.jpg").write_bytes(astronaut.read_bytes())
    code, out, _ = _run(["predict", str(tmp_path / "in"), "--model", str(model_file), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, out
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == ["face_jpg_1_annotated.png", "face_jpg_2_annotated.png"]
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [(Path(record["file"]).parent.name, record["annotated"]) for record in records] == [("one", "face_jpg_1_annotated.png"), ("two", "face_jpg_2_annotated.png")]


def _uniform_model(batch, training=False):
    return np.full((len(batch), 7), 1 / 7, np.float32)


def test_faces_are_sorted_largest_first():
    class Detector:
        def detectMultiScale(self, gray, **keywords):
            return np.array([[0, 0, 30, 30], [50, 50, 80, 80], [10, 10, 40, 40]])

    assert [box[2] for box in predict.detect_faces(np.zeros((200, 200), np.uint8), Detector())] == [80, 40, 30]


def test_records_number_faces_from_zero():
    faces = [predict.Face((0, 0, 10, 10), np.eye(7)[3]), predict.Face((20, 0, 10, 10), np.eye(7)[0])]
    rows = predict.records(predict.ImageResult("p.jpg", faces))
    assert [(row["face"], row["emotion"]) for row in rows] == [(0, "Happy"), (1, "Angry")]


def test_an_image_of_exactly_the_pixel_limit_is_accepted(tmp_path):
    path = tmp_path / "edge.png"
    Image.new("L", (100, 50), 7).save(path)
    assert predict.load_grayscale(path, max_pixels=5000).shape == (50, 100)
    with pytest.raises(predict.ImageError, match="too large"):
        predict.load_grayscale(path, max_pixels=4999)


def test_32_bit_integer_images_with_16_bit_values_are_scaled_not_clipped(tmp_path):
    gradient = (np.arange(40 * 60).reshape(40, 60) % 251).astype(np.uint8)
    path = tmp_path / "deep.tif"
    Image.fromarray(gradient.astype(np.int32) * 257).save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(predict.load_grayscale(path), gradient)


def test_transparent_palette_pixels_become_white(tmp_path):
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, 40, 40, 40] + [0] * 762)
    image.paste(1, (0, 0, 10, 5))  # top half: opaque dark gray; bottom half: transparent black
    path = tmp_path / "transparent.png"
    image.save(path, transparency=0)
    gray = predict.load_grayscale(path)
    assert (gray[:5] == 40).all() and (gray[5:] == 255).all()


def test_resizing_to_48x48_smooths_rather_than_picks_pixels():
    checker = (np.indices((96, 96)).sum(axis=0) % 2 * 255).astype(np.uint8)
    face = predict.whole_image_face(checker)
    assert face.shape == (48, 48) and np.abs(face.astype(int) - 128).max() < 40


def test_without_detection_the_whole_image_is_the_face_without_margin(tmp_path):
    gray = np.add.outer(np.arange(40) * 2, np.arange(60) * 3).astype(np.uint8)
    path = tmp_path / "face.png"
    Image.fromarray(gray).save(path)
    seen = []

    def model(batch, training=False):
        seen.append(np.asarray(batch))
        return _uniform_model(batch)

    result = predict.predict_image(path, model, None, detect=False, tta=False)
    assert result.faces[0].box == (0, 0, 60, 40)  # x, y, width, height
    np.testing.assert_array_equal(np.round(seen[0][0, :, :, 0] * 255).astype(np.uint8), predict.whole_image_face(gray))


def test_gray_with_alpha_is_composited_on_white(tmp_path):
    la = np.zeros((10, 10, 2), np.uint8)
    la[:5, :, 1] = 255  # opaque black top half, transparent black bottom half
    path = tmp_path / "alpha.png"
    Image.fromarray(la, "LA").save(path)
    assert Image.open(path).mode == "LA"
    gray = predict.load_grayscale(path)
    assert (gray[:5] == 0).all() and (gray[5:] == 255).all()


def test_no_tta_flag_reaches_the_classifier(model_file, tmp_path, monkeypatch):
    Image.fromarray(np.full((48, 48), 100, np.uint8)).save(tmp_path / "face.png")
    calls = []

    def classify(model, faces, tta=True):
        calls.append(tta)
        return _uniform_model(faces)

    monkeypatch.setattr(predict, "classify_faces", classify)
    code = cli.main(["predict", str(tmp_path / "face.png"), "--model", str(model_file), "--out", str(tmp_path / "out"), "--no-detect", "--no-tta", "--no-annotate"])
    assert code == 0 and calls == [False]


def test_a_failed_run_removes_only_the_folders_it_created(model_file, tmp_path):
    Image.new("L", (200, 200), 128).save(tmp_path / "blank.png")   # no face in it
    users_empty_folder = tmp_path / "empty"
    users_empty_folder.mkdir()
    code = cli.main(["predict", str(tmp_path / "blank.png"), "--model", str(model_file), "--out", str(users_empty_folder / "new" / "out")])
    assert code == 1
    assert users_empty_folder.is_dir() and not (users_empty_folder / "new").exists()
