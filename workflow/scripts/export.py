"""Rules export and export_savedmodel: write the model in a deployment format and check it."""
from emotionnet import export, runtime

with runtime.job(snakemake.log[0], f"export {snakemake.wildcards.model}"):
    runtime.configure(threads=snakemake.threads)
    fmt = snakemake.wildcards.get("fmt", "savedmodel")
    _, difference = export.export_checked(snakemake.input.model, fmt, snakemake.output.exported, snakemake.params.tolerance)
    runtime.log.info("max abs difference against Keras on sample inputs: %.2e", difference)
