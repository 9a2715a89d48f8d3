"""Rules evaluate and ensemble: metrics and predictions of one model (or the mean of several) on
one split. No training or model-selection step reads the test split: only this final evaluation
and the figures drawn from its results (rule plot_evaluation) do."""
from emotionnet import evaluate, models, prepare, runtime

with runtime.job(snakemake.log[0], f"{snakemake.rule} {snakemake.wildcards.eval_split}"):
    runtime.configure(threads=snakemake.threads)
    paths = snakemake.input.models if snakemake.rule == "ensemble" else [snakemake.input.model]
    loaded = [models.load(path) for path in paths]
    images, labels = prepare.load_arrays(snakemake.input.images, snakemake.input.labels)
    metrics, predictions = evaluate.evaluate(loaded, images, labels, split=snakemake.wildcards.eval_split, tta=snakemake.params.tta, crop_shift=snakemake.params.crop_shift, batch_size=snakemake.params.batch_size)
    metrics["members"] = list(paths)
    evaluate.write_results(metrics, predictions, snakemake.output.metrics, snakemake.output.predictions)
