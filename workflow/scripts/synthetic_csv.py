"""Rule synthetic_csv: draw the embedded default dataset as a FER2013-format CSV."""
from emotionnet import runtime, synthetic

with runtime.job(snakemake.log[0], "synthetic_csv"):
    settings = dict(snakemake.params.settings)
    images, labels, usage = synthetic.generate(
        settings["n_images"],
        settings["seed"],
        class_weights=settings.get("class_weights"),
        label_noise=settings.get("label_noise", 0.0),
        variation=settings.get("variation", 1.0),
        split_fractions=settings.get("split_fractions"),
    )
    synthetic.write_csv(snakemake.output[0], images, labels, usage)
