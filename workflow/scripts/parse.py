"""Rule parse: CSV -> split arrays, per-image table and data audit."""
from emotionnet import prepare, runtime

with runtime.job(snakemake.log[0], "parse"):
    outputs = {key: snakemake.output[key] for key in snakemake.output.keys()}
    prepare.prepare(snakemake.input.csv, outputs, workers=snakemake.threads, **snakemake.params.settings)
