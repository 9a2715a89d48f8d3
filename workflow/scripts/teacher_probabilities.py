"""Rule teacher_probabilities: a trained model's probabilities for every training image, the soft
targets of a model that names it as a teacher. The prediction batch is evaluate's default, not
the configured evaluation batch size: these are training data, and an evaluation setting must not
retrain the students."""
import numpy as np

from emotionnet import data, evaluate, models, runtime

with runtime.job(snakemake.log[0], f"teacher probabilities {snakemake.wildcards.model}"):
    runtime.configure(threads=snakemake.threads)
    model = models.load(snakemake.input.model)
    images = np.load(snakemake.input.images)
    probabilities = evaluate.predict_probabilities(model, images)
    with data.atomic_outputs({"probabilities": snakemake.output[0]}) as partial:
        with open(partial["probabilities"], "wb") as stream:
            np.save(stream, probabilities)
