"""Rule train: fit one registered model; keep its best-validation weights."""
from emotionnet import prepare, runtime, train

with runtime.job(snakemake.log[0], f"train {snakemake.wildcards.model}"):
    train_images, train_labels = prepare.load_arrays(snakemake.input.train_images, snakemake.input.train_labels)
    val_images, val_labels = prepare.load_arrays(snakemake.input.val_images, snakemake.input.val_labels)
    model, history = train.train(
        train_images,
        train_labels,
        val_images,
        val_labels,
        settings=snakemake.params.settings,
        seed=snakemake.params.seed,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        threads=snakemake.threads,
        deterministic=snakemake.params.deterministic,
        memory_budget_mb=snakemake.resources.mem_mb,
        teacher_probabilities=train.teacher_probabilities(snakemake.input.teacher),
    )
    outputs = {key: snakemake.output[key] for key in ("model", "weights", "history", "info")}
    train.write_outputs(model, history, settings=snakemake.params.settings, **outputs)
    train.Checkpoint(snakemake.params.checkpoint_dir, run_id="").remove()
