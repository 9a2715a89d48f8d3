"""Rule plot_history: training and validation curves."""
import pandas as pd

from emotionnet import plots, runtime

with runtime.job(snakemake.log[0], "plot_history"):
    plots.plot_history(pd.read_csv(snakemake.input.history), snakemake.output.curves, dpi=snakemake.params.dpi)
