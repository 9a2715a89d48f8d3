"""Rule summary: a short Markdown summary of one model."""
import pandas as pd

from emotionnet import report, runtime

with runtime.job(snakemake.log[0], "summary"):
    text = report.model_summary(
        snakemake.wildcards.model,
        report.read_json(snakemake.input.info),
        pd.read_csv(snakemake.input.history),
        report.read_json(snakemake.input.val),
        report.read_json(snakemake.input.test),
    )
    with open(snakemake.output[0], "w") as stream:
        stream.write(text)
