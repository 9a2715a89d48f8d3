"""Put a trained model to work on photos: load any common image safely, find every face with
OpenCV's bundled Haar cascade, crop it the way FER2013 faces are framed, and classify it."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from emotionnet import data

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
MAX_PIXELS = 64_000_000  # larger images are refused (decompression bombs)
FACE_MARGIN = 0.1  # the detector's box grown by this fraction per side, like FER2013's framing
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_NAME = "emotionnet-fer2013.keras"


class ImageError(ValueError):
    """An input file that cannot be used as an image."""


@dataclass
class Face:
    box: tuple  # x, y, width, height in the (EXIF-rotated) image
    probabilities: np.ndarray

    @property
    def emotion(self) -> str:
        return data.EMOTIONS[int(np.argmax(self.probabilities))]


@dataclass
class ImageResult:
    path: Path
    faces: list = field(default_factory=list)
    error: str | None = None


def default_model_path() -> Path:
    """The shipped pretrained model (or the file named by $EMOTIONNET_MODEL)."""
    return Path(os.environ.get("EMOTIONNET_MODEL", REPO_MODELS / DEFAULT_MODEL_NAME))


def load_grayscale(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as a uint8 grayscale array, EXIF rotation applied. Handles 8/16-bit, RGBA
    (composited on white), palette and CMYK images; refuses non-images and oversized images."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"{path}: too large: {width}x{height} pixels is more than the limit of {max_pixels:,}")
                image = ImageOps.exif_transpose(image)
                return _to_gray_array(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{path}: too large: refused as a possible decompression bomb ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None


def _to_gray_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return np.clip(values / max(values.max(), 1e-9) * 255 + 0.5, 0, 255).astype(np.uint8)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.uint8)


def face_detector():
    """OpenCV's frontal-face Haar cascade, shipped inside the opencv package (nothing downloaded)."""
    import cv2

    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(f"OpenCV's face cascade is missing or unreadable: {path}")
    return detector


def detect_faces(gray: np.ndarray, detector) -> list:
    """Boxes (x, y, w, h) of the faces in a grayscale image, largest first."""
    min_side = max(24, min(gray.shape) // 20)
    boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda box: -box[2] * box[3])


def crop_face(gray: np.ndarray, box, margin: float = FACE_MARGIN) -> np.ndarray:
    """The face box grown by ``margin`` per side, squared, edge-padded where it leaves the image,
    and resized to 48x48 (uint8), matching FER2013's framing and preprocessing."""
    x, y, width, height = box
    side = max(width, height) * (1 + 2 * margin)
    centre_x, centre_y = x + width / 2, y + height / 2
    left, top = int(round(centre_x - side / 2)), int(round(centre_y - side / 2))
    size = int(round(side))
    pad = max(0, -left, -top, left + size - gray.shape[1], top + size - gray.shape[0])
    padded = np.pad(gray, pad, mode="edge") if pad else gray
    crop = padded[top + pad : top + pad + size, left + pad : left + pad + size]
    return whole_image_face(crop)


def whole_image_face(gray: np.ndarray) -> np.ndarray:
    """An already-cropped face resized to 48x48 (uint8)."""
    resized = Image.fromarray(gray).resize((data.IMAGE_SIDE, data.IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def classify_faces(model, faces: np.ndarray, tta: bool = True) -> np.ndarray:
    """Probabilities (n, 7) of uint8 face crops (n, 48, 48)."""
    from emotionnet import evaluate

    return evaluate.predict_probabilities(model, faces, tta=tta)


def predict_image(path, model, detector, *, detect: bool = True, tta: bool = True) -> ImageResult:
    """Every face of one image file with its probabilities; problems become ``result.error``."""
    result = ImageResult(Path(path))
    try:
        gray = load_grayscale(path)
    except ImageError as error:
        result.error = str(error)
        return result
    boxes = detect_faces(gray, detector) if detect else [(0, 0, gray.shape[1], gray.shape[0])]
    if not boxes:
        result.error = f"{path}: no face found (for an image that is already a cropped face, use --no-detect, or predict.detect: false in the workflow)"
        return result
    crops = np.stack([crop_face(gray, box) if detect else whole_image_face(gray) for box in boxes])
    probabilities = classify_faces(model, crops, tta=tta)
    result.faces = [Face(box, row) for box, row in zip(boxes, probabilities)]
    return result


def annotate(path, result: ImageResult, out_path):
    """A copy of the image with each face's box and top emotion drawn on it."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        canvas = Image.fromarray(_to_gray_array(image)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    line = max(2, min(canvas.size) // 200)
    for face in result.faces:
        x, y, width, height = face.box
        draw.rectangle([x, y, x + width, y + height], outline=(255, 64, 64), width=line)
        label = f"{face.emotion} {face.probabilities.max():.0%}"
        text_box = draw.textbbox((x, y), label)
        top = max(0, y - (text_box[3] - text_box[1]) - 4)
        draw.rectangle([x, top, x + text_box[2] - text_box[0] + 6, top + text_box[3] - text_box[1] + 4], fill=(255, 64, 64))
        draw.text((x + 3, top + 1), label, fill=(255, 255, 255))
    canvas.save(out_path)


def collect_images(inputs) -> list:
    """Image files named directly, and the image files inside named folders (sorted, recursive)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(path for path in item.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        else:
            files.append(item)
    return files


def annotated_names(files) -> list:
    """The file name of each input's annotated copy: ``<stem>_annotated.png``, unless other inputs
    share the stem (ignoring case, as some file systems do); then with the extension when that
    tells them apart (x.jpg and x.png give x_jpg_annotated.png and x_png_annotated.png), else also
    numbered in input order (a/x.jpg and b/x.jpg give x_jpg_1_annotated.png and x_jpg_2_annotated.png)."""
    from collections import Counter

    paths = [Path(path) for path in files]
    stems = Counter(path.stem.casefold() for path in paths)
    stems_with_suffix = Counter((path.stem.casefold(), path.suffix.lower()) for path in paths)
    seen, names, taken = Counter(), [], set()
    for path in paths:
        key = (path.stem.casefold(), path.suffix.lower())
        name = path.stem
        if stems[key[0]] > 1:
            name += "_" + (key[1].lstrip(".") or "none")
        if stems_with_suffix[key] > 1:
            seen[key] += 1
            name += f"_{seen[key]}"
        while f"{name}_annotated.png".casefold() in taken:  # e.g. x_jpg.png beside x.jpg and x.png
            name += "_"
        names.append(f"{name}_annotated.png")
        taken.add(names[-1].casefold())
    return names


def predict_files(files, model, out_dir, *, detect: bool = True, tta: bool = True, annotate_images: bool = True, on_file=None):
    """Predict every image file, writing annotated copies to ``out_dir`` (named by
    ``annotated_names``, so that no copy overwrites another). Returns (records, errors):
    one record per face, one message per file that failed. ``on_file(index, total, result)`` is
    called after each file (progress)."""
    detector = face_detector() if detect else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, errors = [], []
    for index, (path, annotated_name) in enumerate(zip(files, annotated_names(files)), start=1):
        result = predict_image(path, model, detector, detect=detect, tta=tta)
        if result.error:
            errors.append(result.error)
        else:
            rows += records(result, annotated_name if annotate_images else "")
            if annotate_images:
                annotate(path, result, out_dir / annotated_name)
        if on_file:
            on_file(index, len(files), result)
    return rows, errors


RECORD_COLUMNS = ["file", "face", "x", "y", "width", "height", "emotion"] + [name.lower() for name in data.EMOTIONS] + ["annotated"]


def write_records(rows, path, fmt: str):
    """Per-face records as JSON (a list of objects) or CSV (columns RECORD_COLUMNS)."""
    import csv
    import json

    if fmt == "json":
        Path(path).write_text(json.dumps(rows, indent=1) + "\n")
        return
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=RECORD_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def records(result: ImageResult, annotated: str = "") -> list:
    """Flat per-face records (file, face index, box, emotion, 7 probabilities, and the file name
    of the image's annotated copy, "" when none is written)."""
    rows = []
    for index, face in enumerate(result.faces):
        x, y, width, height = face.box
        row = {"file": str(result.path), "face": index, "x": x, "y": y, "width": width, "height": height, "emotion": face.emotion}
        row.update({name.lower(): round(float(p), 6) for name, p in zip(data.EMOTIONS, face.probabilities)})
        rows.append({**row, "annotated": annotated})
    return rows
