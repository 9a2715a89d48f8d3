def all_model_files(wildcards):
    """Per-model artifacts of every model and ensemble of a dataset, for the dataset report, keyed
    model/<name>/<part> and ensemble/<name>/<part> (emotionnet.report.load_runs reads them)."""
    files = {}
    for model in dataset_models(wildcards.dataset):
        folder = model_dir(wildcards.dataset, model)
        files[f"model/{model}/info"] = f"{folder}/info.json"
        files[f"model/{model}/history"] = f"{folder}/history.csv"
        for split in EVAL_SPLITS:
            files[f"model/{model}/{split}"] = f"{folder}/eval/{split}/metrics.json"
    for ensemble in dataset_ensembles(wildcards.dataset):
        for split in EVAL_SPLITS:
            files[f"ensemble/{ensemble}/{split}"] = f"results/{wildcards.dataset}/ensembles/{ensemble}/eval/{split}/metrics.json"
    return files


rule plot_history:
    input:
        history="results/{dataset}/models/{model}/history.csv",
    output:
        curves=report(
            "results/{dataset}/models/{model}/report/curves.png",
            caption="../report/curves.rst",
            category="{model}",
            subcategory="training",
        ),
    params:
        dpi=config["report"]["dpi"],
    log:
        "results/{dataset}/logs/plot_history/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/plot_history/{model}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_history.py"


rule plot_evaluation:
    input:
        metrics="results/{dataset}/models/{model}/eval/{eval_split}/metrics.json",
        predictions="results/{dataset}/models/{model}/eval/{eval_split}/predictions.parquet",
        images="results/{dataset}/data/{eval_split}_images.npy",
    output:
        confusion=report(
            "results/{dataset}/models/{model}/report/{eval_split}/confusion.png",
            caption="../report/confusion.rst",
            category="{model}",
            subcategory="{eval_split}",
        ),
        per_class=report(
            "results/{dataset}/models/{model}/report/{eval_split}/per_class.png",
            caption="../report/per_class.rst",
            category="{model}",
            subcategory="{eval_split}",
        ),
        examples=report(
            "results/{dataset}/models/{model}/report/{eval_split}/examples.png",
            caption="../report/examples.rst",
            category="{model}",
            subcategory="{eval_split}",
        ),
    params:
        dpi=config["report"]["dpi"],
        examples=config["report"]["examples"],
    log:
        "results/{dataset}/logs/plot_evaluation/{model}_{eval_split}.log",
    benchmark:
        "results/{dataset}/benchmarks/plot_evaluation/{model}_{eval_split}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    script:
        "../scripts/plot_evaluation.py"


rule summary:
    input:
        info="results/{dataset}/models/{model}/info.json",
        history="results/{dataset}/models/{model}/history.csv",
        val="results/{dataset}/models/{model}/eval/val/metrics.json",
        test="results/{dataset}/models/{model}/eval/test/metrics.json",
    output:
        report(
            "results/{dataset}/models/{model}/summary.md",
            caption="../report/summary.rst",
            category="{model}",
        ),
    log:
        "results/{dataset}/logs/summary/{model}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/summary.py"


rule dataset_report:
    input:
        unpack(all_model_files),
        audit="results/{dataset}/data/audit.json",
    output:
        table=report("results/{dataset}/report/models.csv", caption="../report/models.rst", category="overview"),
        time_to_accuracy=report("results/{dataset}/report/time_to_accuracy.png", caption="../report/time_to_accuracy.rst", category="overview"),
        class_distribution=report("results/{dataset}/report/class_distribution.png", caption="../report/class_distribution.rst", category="overview"),
    params:
        dpi=config["report"]["dpi"],
    log:
        "results/{dataset}/logs/dataset_report.log",
    benchmark:
        "results/{dataset}/benchmarks/dataset_report.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/dataset_report.py"
