"""Rule dataset_report: the table of all models, time-to-accuracy and class distribution."""
import pandas as pd

from emotionnet import plots, report, runtime

with runtime.job(snakemake.log[0], "dataset_report"):
    files = {key: snakemake.input[key] for key in snakemake.input.keys() if ":" in key}
    names = dict.fromkeys(key.split(":")[0] for key in files)
    model_runs, ensemble_runs, histories = {}, {}, {}
    for name in names:
        val, test = (report.read_json(files[f"{name}:{split}"]) for split in ("val", "test"))
        if name.startswith("ensemble "):
            ensemble_runs[name] = (val, test)
        else:
            histories[name] = pd.read_csv(files[f"{name}:history"])
            model_runs[name] = (report.read_json(files[f"{name}:info"]), histories[name], val, test)
    report.models_table(model_runs, ensemble_runs).to_csv(snakemake.output.table, index=False)
    plots.plot_time_to_accuracy(histories, snakemake.output.time_to_accuracy, dpi=snakemake.params.dpi)
    plots.plot_class_distribution(report.read_json(snakemake.input.audit), snakemake.output.class_distribution, dpi=snakemake.params.dpi)
