rule export:
    """A trained model in a deployment format, checked against Keras on sample inputs:
    snakemake results/<dataset>/models/<model>/model.onnx (or .tflite)."""
    input:
        model="results/{dataset}/models/{model}/model.keras",
    output:
        exported="results/{dataset}/models/{model}/model.{fmt}",
    params:
        tolerance=config["export"]["tolerance"],
    wildcard_constraints:
        fmt="onnx|tflite",
    log:
        "results/{dataset}/logs/export/{model}_{fmt}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/export.py"


rule export_savedmodel:
    input:
        model="results/{dataset}/models/{model}/model.keras",
    output:
        exported=directory("results/{dataset}/models/{model}/model_savedmodel"),
    params:
        tolerance=config["export"]["tolerance"],
    log:
        "results/{dataset}/logs/export/{model}_savedmodel.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/export.py"


rule predict:
    """Faces found in the photos of config `predict.images`, classified by one trained model:
    snakemake results/<dataset>/predictions/<model>/predictions.csv"""
    input:
        model="results/{dataset}/models/{model}/model.keras",
        images=photos_folder,
    output:
        records="results/{dataset}/predictions/{model}/predictions.csv",
        annotated=directory("results/{dataset}/predictions/{model}/annotated"),
    params:
        detect=config["predict"]["detect"],
        tta=config["predict"]["tta"],
    log:
        "results/{dataset}/logs/predict/{model}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/predict.py"
