"""Rule plot_evaluation: confusion matrix, per-class metrics and example faces of one split."""
import numpy as np
import pandas as pd

from emotionnet import plots, report, runtime

with runtime.job(snakemake.log[0], "plot_evaluation"):
    metrics = report.read_json(snakemake.input.metrics)
    dpi = snakemake.params.dpi
    plots.plot_confusion(metrics, snakemake.output.confusion, dpi=dpi)
    plots.plot_per_class(metrics, snakemake.output.per_class, dpi=dpi)
    images = np.load(snakemake.input.images, allow_pickle=False)
    predictions = pd.read_parquet(snakemake.input.predictions)
    plots.plot_examples(images, predictions, snakemake.output.examples, count=snakemake.params.examples, dpi=dpi)
