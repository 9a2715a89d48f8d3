"""Rule dataset_report: the table of all models, time-to-accuracy and class distribution."""
from emotionnet import plots, report, runtime

with runtime.job(snakemake.log[0], "dataset_report"):
    run_files = {key: snakemake.input[key] for key in snakemake.input.keys() if key.startswith(("model/", "ensemble/"))}
    model_runs, ensemble_runs = report.load_runs(run_files)
    report.models_table(model_runs, ensemble_runs).to_csv(snakemake.output.table, index=False)
    histories = {name: history for name, (_, history, _, _) in model_runs.items()}
    plots.plot_time_to_accuracy(histories, snakemake.output.time_to_accuracy, dpi=snakemake.params.dpi)
    plots.plot_class_distribution(report.read_json(snakemake.input.audit), snakemake.output.class_distribution, dpi=snakemake.params.dpi)
