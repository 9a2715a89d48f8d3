"""The ``emotionnet`` command: predict on photos, evaluate a model on a CSV, export a model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from emotionnet import data


MAX_CROP_SHIFT = 8  # as the config schema's evaluate.tta_crop_shift


def _crop_shift(text: str) -> int:
    """argparse type of --tta-crop-shift: whole pixels from 0 to MAX_CROP_SHIFT."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_CROP_SHIFT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels from 0 to {MAX_CROP_SHIFT}")
    return int(text)


def _parser():
    parser = argparse.ArgumentParser(prog="emotionnet", description="Facial expression recognition (FER2013's 7 emotions).")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="find faces in photos and classify their expressions")
    predict.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    predict.add_argument("--model", help="a .keras model (default: $EMOTIONNET_MODEL if set, else the shipped pretrained model)")
    predict.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    predict.add_argument("--format", choices=["json", "csv"], default="json", help="format of the per-face records")
    predict.add_argument("--no-detect", action="store_true", help="treat every input as an already-cropped face")
    predict.add_argument("--no-annotate", action="store_true", help="do not write annotated copies of the images")
    predict.add_argument("--no-tta", action="store_true", help="classify the crop only, not also its mirror image")

    evaluate = commands.add_parser("evaluate", help="metrics of a model on a FER2013-format CSV")
    evaluate.add_argument("model", help="a .keras model")
    evaluate.add_argument("csv", help="FER2013-format CSV (.csv or .csv.gz)")
    evaluate.add_argument("--usage", choices=list(data.USAGE_TO_SPLIT), help="only rows of this Usage (default: all rows)")
    evaluate.add_argument("--tta", action="store_true", help="also report mirror test-time augmentation")
    evaluate.add_argument("--tta-crop-shift", type=_crop_shift, default=0, help=f"also report 10-view TTA: the image and 4 copies shifted diagonally by this many pixels (0 to {MAX_CROP_SHIFT}), each also mirrored (needs no --tta)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    export = commands.add_parser("export", help="export a model for deployment and check it against Keras")
    export.add_argument("model", help="a .keras model")
    export.add_argument("--format", choices=["onnx", "tflite", "savedmodel", "keras"], required=True, help="keras: a .keras file without optimiser state, for shipping")
    export.add_argument("--out", help="output path (default: next to the model)")
    export.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed output difference")
    return parser


def _progress(index, total, result):
    """One status line per file; a bar that rewrites itself when there are many files."""
    stream = sys.stderr
    if result.error:
        stream.write(("\n" if total > 1 else "") + f"skipped: {result.error}\n")
    if total > 1:
        stream.write(f"\r[{index}/{total}] {str(result.path)[-60:]:<60}")
        if index == total:
            stream.write("\n")
    stream.flush()


class UsageError(Exception):
    """A mistake in the command line, reported before any work is done (exit code 2)."""


def _model_path(args, predict) -> Path:
    """The model to predict with; an error naming where its path came from if it is missing."""
    model_path = Path(args.model) if args.model else predict.default_model_path()
    if model_path.exists():
        return model_path
    if args.model:
        hint = ""
    elif os.environ.get("EMOTIONNET_MODEL"):
        hint = " (named by $EMOTIONNET_MODEL)"
    else:
        hint = " (the shipped model is in the repository's models/ folder, which an editable install `pip install -e .` of a checkout finds; otherwise name a model with --model or $EMOTIONNET_MODEL)"
    raise UsageError(f"model file {model_path} not found{hint}")


def _image_files(args, predict) -> list:
    """The image files named by the inputs, which must exist."""
    missing = [item for item in args.inputs if not Path(item).exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    files = predict.collect_images(args.inputs)
    if not files:
        raise UsageError(f"no image files ({', '.join(sorted(predict.IMAGE_SUFFIXES))}) in {', '.join(args.inputs)}")
    return files


def _out_folder(args) -> Path:
    """The --out folder, which may not exist yet but must not be a file."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the records and annotated images")
    return out


def _first_missing_folder(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (None if ``path`` exists)."""
    missing = None
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_empty_folders(path: Path, up_to: Path):
    """Remove ``path`` and its parents up to ``up_to`` (the folders a run created), while empty."""
    for folder in [path, *path.parents]:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == up_to:
            return


def run_predict(args) -> int:
    from emotionnet import predict   # TensorFlow only once the inputs are checked

    model_path = _model_path(args, predict)
    files = _image_files(args, predict)
    out = _out_folder(args)
    from emotionnet import models

    model = models.load(model_path)
    created = _first_missing_folder(out)
    rows, errors = predict.predict_files(files, model, out, detect=not args.no_detect, tta=not args.no_tta, annotate_images=not args.no_annotate, on_file=_progress)
    records_path = out / f"predictions.{args.format}"
    if not rows:
        if created is not None:
            _remove_empty_folders(out, created)
            outcome = "nothing written"
        else:   # an existing folder: replace older records rather than leave them
            predict.write_records(rows, records_path, args.format)
            outcome = f"{records_path} holds no records"
        print(f"error: no face classified in {len(files)} image(s); {outcome}", file=sys.stderr)
        return 1
    predict.write_records(rows, records_path, args.format)
    print(f"{len(rows)} face(s) in {len(files) - len(errors)} of {len(files)} image(s); records in {records_path}")
    return 1 if errors else 0


def run_evaluate(args) -> int:
    from emotionnet import evaluate, models, report

    models.require_model_file(args.model)   # before the parse, so a mistyped name fails at once
    parsed = data.parse_csv(args.csv)
    rows = np.ones(len(parsed.labels), bool)
    if args.usage:
        if (parsed.split_codes == data.NO_USAGE).all():
            print(f"error: {args.csv} has no Usage column; leave out --usage to evaluate all its rows", file=sys.stderr)
            return 2
        rows = parsed.split_codes == list(data.USAGE_TO_SPLIT).index(args.usage)
        if not rows.any():
            print(f"error: {args.csv} has no rows with Usage {args.usage}", file=sys.stderr)
            return 2
    model = models.load(args.model)
    metrics, _ = evaluate.evaluate([model], parsed.images[rows], parsed.labels[rows], split=args.usage or "all", tta=args.tta, crop_shift=args.tta_crop_shift)
    metrics["members"] = [str(args.model)]
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{args.model} on {args.csv} ({args.usage or 'all rows'}): n={metrics['n']}  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  top-2 {metrics['top2_accuracy']:.4f}  log loss {metrics['log_loss']:.4f}")
    for key, name in report.TTA_NAMES.items():
        if key in metrics:
            print(f"with {name}: accuracy {metrics[key]['accuracy']:.4f}  macro-F1 {metrics[key]['macro_f1']:.4f}")
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, scores in metrics["per_class"].items():
        print(f"{name:<10}{scores['precision']:>10.3f}{scores['recall']:>10.3f}{scores['f1']:>10.3f}{scores['support']:>10}")
    return 0


def run_export(args) -> int:
    from emotionnet import export

    try:
        out, difference = export.export_checked(args.model, args.format, args.out, args.tolerance)
    except export.ExportMismatch as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"exported {out}; max abs difference against Keras on sample inputs: {difference:.2e}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    runners = {"predict": run_predict, "evaluate": run_evaluate, "export": run_export}
    try:
        return runners[args.command](args)
    except (UsageError, data.CsvFormatError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
