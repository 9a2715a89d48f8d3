"""Rule predict: every face in the configured photo folder, classified by one trained model."""
from pathlib import Path

from emotionnet import models, predict, runtime


def log_progress(index, total, result):
    if result.error:
        runtime.log.warning("skipped: %s", result.error)
    runtime.log.info("[%d/%d] %s: %d face(s)", index, total, result.path, len(result.faces))


with runtime.job(snakemake.log[0], f"predict {snakemake.wildcards.model}"):
    runtime.configure(threads=snakemake.threads)
    files = predict.collect_images([snakemake.input.images])
    if not files:
        raise FileNotFoundError(f"predict.images: no image files in {snakemake.input.images}")
    model = models.load(snakemake.input.model)
    rows, errors = predict.predict_files(files, model, snakemake.output.annotated, detect=snakemake.params.detect, tta=snakemake.params.tta, on_file=log_progress)
    predict.write_records(rows, snakemake.output.records, "csv")
    runtime.log.info("%d face(s) in %d of %d image(s); %d skipped", len(rows), len(files) - len(errors), len(files), len(errors))
