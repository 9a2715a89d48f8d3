rule evaluate:
    input:
        model="results/{dataset}/models/{model}/model.keras",
        images="results/{dataset}/data/{eval_split}_images.npy",
        labels="results/{dataset}/data/{eval_split}_labels.npy",
    output:
        metrics="results/{dataset}/models/{model}/eval/{eval_split}/metrics.json",
        predictions="results/{dataset}/models/{model}/eval/{eval_split}/predictions.parquet",
    params:
        tta=config["evaluate"]["tta"],
        crop_shift=config["evaluate"]["tta_crop_shift"],
        batch_size=config["evaluate"]["batch_size"],
    log:
        "results/{dataset}/logs/evaluate/{model}_{eval_split}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate/{model}_{eval_split}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/evaluate.py"


rule ensemble:
    input:
        models=ensemble_models,
        images="results/{dataset}/data/{eval_split}_images.npy",
        labels="results/{dataset}/data/{eval_split}_labels.npy",
    output:
        metrics="results/{dataset}/ensembles/{ensemble}/eval/{eval_split}/metrics.json",
        predictions="results/{dataset}/ensembles/{ensemble}/eval/{eval_split}/predictions.parquet",
    params:
        tta=config["evaluate"]["tta"],
        crop_shift=config["evaluate"]["tta_crop_shift"],
        batch_size=config["evaluate"]["batch_size"],
    log:
        "results/{dataset}/logs/ensemble/{ensemble}_{eval_split}.log",
    benchmark:
        "results/{dataset}/benchmarks/ensemble/{ensemble}_{eval_split}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/evaluate.py"
