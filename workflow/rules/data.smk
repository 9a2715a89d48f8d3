rule synthetic_csv:
    output:
        "results/{dataset}/data/source.csv",
    params:
        settings=synthetic_settings,
    log:
        "results/{dataset}/logs/synthetic_csv.log",
    benchmark:
        "results/{dataset}/benchmarks/synthetic_csv.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/synthetic_csv.py"


rule parse:
    input:
        csv=csv_source,
    output:
        train_images="results/{dataset}/data/train_images.npy",
        train_labels="results/{dataset}/data/train_labels.npy",
        val_images="results/{dataset}/data/val_images.npy",
        val_labels="results/{dataset}/data/val_labels.npy",
        test_images="results/{dataset}/data/test_images.npy",
        test_labels="results/{dataset}/data/test_labels.npy",
        table="results/{dataset}/data/table.parquet",
        audit="results/{dataset}/data/audit.json",
    params:
        settings=parse_settings,
    log:
        "results/{dataset}/logs/parse.log",
    benchmark:
        "results/{dataset}/benchmarks/parse.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../scripts/parse.py"
