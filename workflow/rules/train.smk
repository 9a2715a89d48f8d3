rule train:
    input:
        train_images="results/{dataset}/data/train_images.npy",
        train_labels="results/{dataset}/data/train_labels.npy",
        val_images="results/{dataset}/data/val_images.npy",
        val_labels="results/{dataset}/data/val_labels.npy",
        teacher=teacher_probability_files,
    output:
        model="results/{dataset}/models/{model}/model.keras",
        weights="results/{dataset}/models/{model}/model.weights.h5",
        history="results/{dataset}/models/{model}/history.csv",
        info="results/{dataset}/models/{model}/info.json",
    params:
        settings=model_settings,
        seed=model_seed,
        deterministic=config["deterministic"],
        checkpoint_dir=checkpoint_dir,
    log:
        "results/{dataset}/logs/train/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/train/{model}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=train_gpus,
        gpu_model=train_gpu_model,
    retries: 1
    script:
        "../scripts/train.py"


rule teacher_probabilities:
    input:
        model="results/{dataset}/models/{model}/model.keras",
        images="results/{dataset}/data/train_images.npy",
    output:
        "results/{dataset}/models/{model}/train_probabilities.npy",
    log:
        "results/{dataset}/logs/teacher_probabilities/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/teacher_probabilities/{model}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/teacher_probabilities.py"
