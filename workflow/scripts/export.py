"""Rules export and export_savedmodel: write the model in a deployment format and check it."""
from emotionnet import export, runtime

with runtime.job(snakemake.log[0], f"export {snakemake.wildcards.model}"):
    runtime.configure(threads=snakemake.threads)
    fmt = snakemake.wildcards.get("fmt", "savedmodel")
    written = export.export(snakemake.input.model, fmt, snakemake.output.exported)
    difference = export.verify(snakemake.input.model, written, fmt)
    runtime.log.info("max abs difference against Keras on sample inputs: %.2e", difference)
    if difference > snakemake.params.tolerance:
        export.remove(written)
        raise ValueError(f"exported {fmt} model differs from Keras by {difference:.2e} (tolerance {snakemake.params.tolerance:g}); nothing written")
