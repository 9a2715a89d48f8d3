"""The whole DAG on a small synthetic dataset, in a scratch copy of the project."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_helpers import copy_workflow, planned_rules, snakemake, write_config

pytestmark = pytest.mark.slow

CONFIG = {
    "dataset": "synthetic",
    "datasets": {
        "synthetic": {
            "source": "synthetic",
            "synthetic": {"n_images": 2800, "seed": 2013, "label_noise": 0.0, "split_fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
            "models": ["seed", "compact"],
            "ensembles": {"both": ["seed", "compact"]},
            "overrides": {"seed": {"epochs": 6}, "compact": {"epochs": 8}},
        }
    },
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project copy on which the whole workflow has run once."""
    folder = copy_workflow(tmp_path_factory.mktemp("project"))
    config = write_config(folder, CONFIG)
    snakemake(folder, "--cores", "2", "--set-threads", "train=1", "--configfile", config)
    return folder, config


def test_every_artifact_exists_and_is_sane(project):
    folder, _ = project
    results = folder / "results" / "synthetic"
    audit = json.loads((results / "data" / "audit.json").read_text())
    assert audit["splits"]["train"]["rows"] == 1960 and audit["has_test_split"]
    assert np.load(results / "data" / "val_images.npy").shape == (420, 48, 48)
    for model in ("seed", "compact"):
        model_dir = results / "models" / model
        history = pd.read_csv(model_dir / "history.csv")
        assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds", "elapsed_seconds"]
        assert history["epoch"].tolist() == list(range(1, len(history) + 1))
        assert (history["elapsed_seconds"].diff().dropna() > 0).all()
        for split in ("val", "test"):
            metrics = json.loads((model_dir / "eval" / split / "metrics.json").read_text())
            assert metrics["n"] == 420 and len(metrics["confusion_matrix"]) == 7 and "tta" in metrics
            predictions = pd.read_parquet(model_dir / "eval" / split / "predictions.parquet")
            assert len(predictions) == 420
            for figure in ("confusion", "per_class", "examples"):
                assert (model_dir / "report" / split / f"{figure}.png").stat().st_size > 5000
        assert (model_dir / "report" / "curves.png").stat().st_size > 5000
        summary = (model_dir / "summary.md").read_text()
        assert "accuracy" in summary and "best validation accuracy" in summary
        assert not (model_dir / "checkpoint").exists()
    table = pd.read_csv(results / "report" / "models.csv")
    assert table["name"].tolist() == ["seed", "compact", "both"] and table["kind"].tolist() == ["model", "model", "ensemble"]
    assert json.loads((results / "ensembles" / "both" / "eval" / "val" / "metrics.json").read_text())["n"] == 420


def test_cnn_clearly_beats_chance_and_majority(project):
    folder, _ = project
    results = folder / "results" / "synthetic"
    labels = np.load(results / "data" / "val_labels.npy")
    majority = np.bincount(labels).max() / len(labels)
    best = max(json.loads((results / "models" / model / "eval" / "val" / "metrics.json").read_text())["accuracy"] for model in ("seed", "compact"))
    assert best > max(majority, 1 / 7) + 0.25


def test_second_run_has_nothing_to_do(project):
    folder, config = project
    result = snakemake(folder, "-n", "--configfile", config)
    assert "Nothing to be done" in result.output, result.output[-2000:]


def test_report_option_change_does_not_retrain(project):
    folder, config = project
    changed = write_config(folder, {"report": {"examples": 12, "dpi": 80}}, name="report.yaml")
    planned = planned_rules(snakemake(folder, "-n", "--configfile", config, changed).output)
    assert "plot_evaluation" in planned
    assert planned.keys().isdisjoint({"train", "parse", "evaluate", "synthetic_csv"})


def test_model_change_retrains_only_that_model(project):
    folder, config = project
    changed = dict(CONFIG, models={"compact": {"architecture": "mini_xception", "epochs": 60, "learning_rate": 0.001}})
    result = snakemake(folder, "-n", "--configfile", write_config(folder, changed, name="compact.yaml"))
    assert planned_rules(result.output)["train"] == 1
    assert "output: results/synthetic/models/compact/model.keras" in result.output


def test_a_models_own_seed_and_the_global_seed_retrain_the_models_that_use_them(project):
    folder, config = project
    synthetic = CONFIG["datasets"]["synthetic"]
    own_seed = dict(CONFIG, datasets={"synthetic": {**synthetic, "overrides": {**synthetic["overrides"], "seed": {"epochs": 6, "seed": 7}}}})
    result = snakemake(folder, "-n", "--configfile", write_config(folder, own_seed, name="own_seed.yaml"))
    assert planned_rules(result.output).get("train") == 1 and "output: results/synthetic/models/seed/model.keras" in result.output
    global_seed = write_config(folder, {"seed": 43}, name="global_seed.yaml")   # the models without a seed of their own
    assert planned_rules(snakemake(folder, "-n", "--configfile", config, global_seed).output).get("train") == 2


def test_one_artifact_regenerates_alone(project):
    folder, config = project
    results = folder / "results" / "synthetic"
    target = results / "models" / "seed" / "report" / "curves.png"
    model_time = (results / "models" / "seed" / "model.keras").stat().st_mtime_ns
    target.unlink()
    result = snakemake(folder, target.relative_to(folder), "--cores", "1", "--configfile", config)
    assert planned_rules(result.output) == {"plot_history": 1}
    assert target.exists() and (results / "models" / "seed" / "model.keras").stat().st_mtime_ns == model_time


def test_html_report_builds(project):
    folder, config = project
    snakemake(folder, "--report", "report.html", "--configfile", config)
    assert (folder / "report.html").stat().st_size > 50_000


def start_up_output(tmp_path, config: dict) -> str:
    """The output of a dry run of a fresh copy of the workflow with ``config``, which must fail."""
    folder = copy_workflow(tmp_path / "project")
    result = snakemake(folder, "-n", "--configfile", write_config(folder, config), check=False)
    assert result.returncode != 0
    return result.output


@pytest.mark.parametrize(
    ("bad_config", "message"),
    [
        ({"models": {"seed": {"architecture": "seed", "epoch": 3}}}, "config key 'models.seed': Additional properties are not allowed ('epoch' was unexpected)"),
        ({"datasets": {"synthetic": {"overrides": {"seed": {"epoch": 3}}}}}, "config key 'datasets.synthetic.overrides.seed': Additional properties are not allowed ('epoch' was unexpected)"),
        ({"determinstic": True}, "config (top level): Additional properties are not allowed ('determinstic' was unexpected)"),
        ({"models": {"seed": {"architecture": "seed", "epochs": 1000}}}, "config key 'models.seed.epochs': 1000 is greater than the maximum of 999"),
        ({"models": {"my/model": {"architecture": "seed"}}}, "config key 'models': name 'my/model' not allowed: names become folder names under results/"),
        ({"datasets": {"synthetic": {"ensembles": {"two seeds": ["seed", "compact"]}}}}, "config key 'datasets.synthetic.ensembles': name 'two seeds' not allowed"),
        ({"datasets": {"fer:2013": {"source": "csv", "csv": "data/fer2013.csv", "models": ["seed"]}}}, "config key 'datasets': name 'fer:2013' not allowed"),
        ({"models": {"..": {"architecture": "seed"}}}, "config key 'models': name '..' not allowed"),
        ({"models": {"-seed": {"architecture": "seed"}}}, "config key 'models': name '-seed' not allowed"),
        ({"models": {2013: {"architecture": "seed"}}}, "config key 'models': name 2013 is not text: quote it in the YAML ('2013')"),
    ],
    ids=["model_block", "dataset_override", "top_level", "epochs_from_1000_would_repeat_augmentation_seeds", "model_name_with_a_slash", "ensemble_name_with_a_space", "dataset_name_with_a_colon", "model_name_of_dots", "model_name_starting_with_a_dash", "model_name_that_yaml_reads_as_a_number"],
)
def test_bad_config_key_fails_at_start_up(tmp_path, bad_config, message):
    output = start_up_output(tmp_path, bad_config)
    assert message in output
    assert "Failed validating" not in output   # one line, not the schema and config dumped


@pytest.mark.parametrize(
    ("path", "message"),
    [(["report", "dpi"], "'dpi' is a required property"), (["datasets", "synthetic", "synthetic", "seed"], "'seed' is a required property")],
    ids=["report_dpi", "synthetic_seed"],
)
def test_missing_config_key_fails_at_start_up(tmp_path, path, message):
    folder = copy_workflow(tmp_path / "project")
    config_file = folder / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    block = config
    for key in path[:-1]:
        block = block[key]
    del block[path[-1]]
    config_file.write_text(yaml.safe_dump(config))
    result = snakemake(folder, "-n", check=False)
    assert result.returncode != 0 and message in result.output


def test_a_yaml_mistake_in_the_config_file_is_reported_with_its_line(tmp_path):
    folder = copy_workflow(tmp_path / "project")
    config_file = folder / "config" / "config.yaml"
    config_file.write_text(config_file.read_text() + "report:\n  dpi: [110\n")   # an unclosed list at the end
    result = snakemake(folder, "-n", check=False)
    line = len(config_file.read_text().splitlines()) + 1   # PyYAML notices at the end of the file
    assert result.returncode != 0 and f"config/config.yaml: line {line}, column 1: not valid YAML" in result.output


def test_csv_dataset_without_a_csv_path_fails_at_start_up(tmp_path):
    output = start_up_output(tmp_path, {"dataset": "mine", "datasets": {"mine": {"source": "csv", "models": ["seed"]}}})
    assert "'csv' is a required property" in output


@pytest.mark.parametrize(
    ("bad_config", "message"),
    [
        # hyperparameters against their architecture's schema entry
        ({"models": {"compact": {"hyperparameters": {"widht": 8}}}}, "config key 'models.compact.hyperparameters' (dataset synthetic, architecture mini_xception): Additional properties are not allowed ('widht' was unexpected)"),
        ({"models": {"vgg": {"hyperparameters": {"convs_per_stage": 2.0}}}}, "config key 'models.vgg.hyperparameters.convs_per_stage' (dataset synthetic, architecture vgg_bn): 2.0 is not of type 'integer'"),  # vgg: in no synthetic list
        ({"datasets": {"synthetic": {"overrides": {"seed": {"hyperparameters": {"dropout": 0.5}}}}}}, "config key 'models.seed.hyperparameters' with datasets.synthetic.overrides.seed merged in (dataset synthetic, architecture seed): Additional properties are not allowed ('dropout' was unexpected)"),
        ({"models": {"resnet_bf16": {"hyperparameters": {"blocks_per_stage": [1, 2]}}}}, "config key 'models.resnet_bf16.hyperparameters.blocks_per_stage' (dataset synthetic, architecture resnet): 2 numbers for 4 stages (widths [32, 64, 128, 256]); give one number per stage"),
        (
            {"models": {"deep": {"architecture": "resnet", "hyperparameters": {"widths": [8, 16]}}}, "datasets": {"synthetic": {"overrides": {"deep": {"hyperparameters": {"blocks_per_stage": [1, 1, 1]}}}}}},
            "config key 'models.deep.hyperparameters.blocks_per_stage' with datasets.synthetic.overrides.deep merged in (dataset synthetic, architecture resnet): 3 numbers for 2 stages (widths [8, 16])",
        ),
        # crops need global pooling
        ({"datasets": {"synthetic": {"overrides": {"seed": {"crop": 40}}}}}, "config key 'models.seed.crop' (dataset synthetic): architecture 'seed' takes only 48x48 images, so it cannot train on crops"),
        ({"models": {"flat": {"architecture": "vgg_bn", "hyperparameters": {"head": "flatten"}, "crop": 40}}}, "config key 'models.flat.crop' (dataset synthetic): architecture 'vgg_bn' with head flatten takes only 48x48 images, so it cannot train on crops"),
        # model names that do not resolve
        ({"datasets": {"synthetic": {"models": ["seed", "compcat"]}}}, "config key 'datasets.synthetic.models': unknown model 'compcat'; defined: seed, compact, fast"),
        ({"datasets": {"synthetic": {"overrides": {"compcat": {"epochs": 3}}}}}, "config key 'datasets.synthetic.overrides.compcat': no such model"),
        ({"datasets": {"synthetic": {"ensembles": {"pair": ["seed", "vgg"]}}}}, "config key 'datasets.synthetic.ensembles.pair': ['vgg'] not in datasets.synthetic.models"),  # vgg is defined, but not trained on this dataset
    ],
    ids=["misspelt", "float_for_int_in_an_unlisted_model", "in_an_override", "blocks_per_stage_not_one_per_stage", "override_merged_key_by_key", "crop_on_seed", "crop_on_vgg_flatten_head", "unknown_model", "override_of_an_unknown_model", "ensemble_member_not_in_the_dataset"],
)
def test_a_config_that_does_not_add_up_fails_at_start_up_naming_the_key(tmp_path, bad_config, message):
    output = start_up_output(tmp_path, bad_config)
    assert message in output


def test_overrides_merge_key_by_key_into_their_own_dataset_only(tmp_path):
    """Each dataset's override is merged into the model block key by key (the model's other
    hyperparameters stay), and never into the block another dataset sees: each override below is
    valid alone, but not together with the other one."""
    folder = copy_workflow(tmp_path / "project")
    deep = {"architecture": "resnet", "hyperparameters": {"widths": [8, 16], "blocks_per_stage": 1}}
    other = {"source": "synthetic", "synthetic": {"n_images": 700, "seed": 5}, "models": ["deep"], "overrides": {"deep": {"hyperparameters": {"blocks_per_stage": [2, 2]}}}}
    synthetic_override = {"deep": {"hyperparameters": {"widths": [8, 16, 32]}}}
    config = write_config(folder, {"models": {"deep": deep}, "datasets": {"synthetic": {"overrides": synthetic_override}, "other": other}})
    snakemake(folder, "-n", "--configfile", config)


def test_a_csv_dataset_falls_back_to_the_gzipped_csv(tmp_path):
    folder = copy_workflow(tmp_path / "project")
    config = write_config(folder, {"dataset": "mine", "datasets": {"mine": {"source": "csv", "csv": "mine.csv", "models": ["seed"]}}})
    result = snakemake(folder, "results/mine/data/audit.json", "-n", "--configfile", config, check=False)
    assert result.returncode != 0 and "datasets.mine.csv: mine.csv does not exist (nor mine.csv.gz); see data/README.md" in result.output
    (folder / "mine.csv.gz").write_bytes(gzip.compress(f"emotion,pixels\n3,{'1 ' * 2303}1\n".encode()))
    result = snakemake(folder, "results/mine/data/audit.json", "-n", "--configfile", config)
    assert "input: mine.csv.gz" in result.output
    named_gz = write_config(folder, {"dataset": "mine", "datasets": {"mine": {"source": "csv", "csv": "theirs.csv.gz", "models": ["seed"]}}}, name="named_gz.yaml")
    result = snakemake(folder, "results/mine/data/audit.json", "-n", "--configfile", named_gz, check=False)
    assert result.returncode != 0 and "datasets.mine.csv: theirs.csv.gz does not exist; see data/README.md" in result.output


@pytest.mark.parametrize(
    ("bad_model", "message"),
    [
        ({"teacher": ["vgg_crop", "nope"], "distillation": 0.5}, "config key 'models.student.teacher' (dataset synthetic): ['nope'] must be defined models other than 'student'"),
        ({"teacher": ["student"], "distillation": 0.5}, "['student'] must be defined models other than 'student'"),
        ({"teacher": ["compact"]}, "config key 'models.student' (dataset synthetic): 'teacher' and 'distillation' go together (teacher ['compact'], distillation 0)"),
        ({"distillation": 0.5}, "'teacher' and 'distillation' go together (teacher [], distillation 0.5)"),
    ],
    ids=["unknown_teacher", "own_teacher", "teacher_without_weight", "weight_without_teacher"],
)
def test_bad_distillation_config_fails_at_start_up(tmp_path, bad_model, message):
    output = start_up_output(tmp_path, {"models": {"student": {"architecture": "mini_xception", **bad_model}}})
    assert message in output


def test_a_distilled_model_trains_on_its_teachers_stored_probabilities(tmp_path):
    """The student's train job waits for one teacher_probabilities job per teacher, whose output
    holds a probability row per training image."""
    folder = copy_workflow(tmp_path / "project")
    small = {"source": "synthetic", "synthetic": {"n_images": 700, "seed": 5}, "models": ["student"], "overrides": {"seed": {"epochs": 1}, "compact": {"epochs": 1}}}
    student = {"architecture": "mini_xception", "epochs": 1, "batch_size": 64, "teacher": ["seed", "compact"], "distillation": 0.5}
    config = write_config(folder, {"dataset": "tiny", "datasets": {"tiny": small}, "models": {"student": student}})
    target = "results/tiny/models/student/model.keras"
    planned = planned_rules(snakemake(folder, target, "-n", "--configfile", config).output)
    assert planned["teacher_probabilities"] == 2 and planned["train"] == 3
    snakemake(folder, target, "--cores", "2", "--configfile", config)
    train_labels = np.load(folder / "results/tiny/data/train_labels.npy")
    for teacher in ("seed", "compact"):
        probabilities = np.load(folder / f"results/tiny/models/{teacher}/train_probabilities.npy")
        assert probabilities.shape == (len(train_labels), 7) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    info = json.loads((folder / "results/tiny/models/student/info.json").read_text())
    assert info["settings"]["teacher"] == ["seed", "compact"] and info["settings"]["distillation"] == 0.5
    # an evaluation setting does not recompute the teachers' probabilities, so no student retrains
    evaluation = write_config(folder, {"evaluate": {"tta": True, "batch_size": 32}}, name="evaluate.yaml")
    result = snakemake(folder, target, "-n", "--configfile", config, evaluation)
    assert "Nothing to be done" in result.output, result.output[-2000:]


def test_bad_csv_fails_parse_naming_the_line(tmp_path):
    folder = copy_workflow(tmp_path / "project")
    csv = folder / "bad.csv"
    csv.write_text("emotion,pixels,Usage\n" + f"3,{'1 ' * 2303}1,Training\n" + f"9,{'1 ' * 2303}1,Training\n")
    config = write_config(folder, {"dataset": "mine", "datasets": {"mine": {"source": "csv", "csv": "bad.csv", "models": ["seed"]}}})
    result = snakemake(folder, "results/mine/data/audit.json", "--cores", "1", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "bad.csv: line 3: emotion label '9' is not an integer 0-6" in result.output
    assert not (folder / "results" / "mine" / "data").exists() or not any((folder / "results" / "mine" / "data").glob("*.npy"))


def test_linear_model_on_pixels_does_clearly_worse(project):
    """The synthetic task is learnable but not trivial: softmax regression on raw pixels trails the CNN."""
    import keras

    folder, _ = project
    data_dir = folder / "results" / "synthetic" / "data"
    train_images, train_labels = np.load(data_dir / "train_images.npy"), np.load(data_dir / "train_labels.npy")
    val_images, val_labels = np.load(data_dir / "val_images.npy"), np.load(data_dir / "val_labels.npy")
    keras.utils.set_random_seed(0)
    linear = keras.Sequential([keras.Input((2304,)), keras.layers.Dense(7, activation="softmax")])
    linear.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = linear.fit(train_images.reshape(len(train_images), -1) / 255.0, train_labels, epochs=40, batch_size=64, verbose=0,
                         validation_data=(val_images.reshape(len(val_images), -1) / 255.0, val_labels))
    linear_best = max(history.history["val_accuracy"])
    cnn_best = max(json.loads((folder / "results" / "synthetic" / "models" / model / "eval" / "val" / "metrics.json").read_text())["accuracy"] for model in ("seed", "compact"))
    assert cnn_best > linear_best + 0.15, (cnn_best, linear_best)


def test_export_and_predict_rules(project):
    from PIL import Image
    from skimage import data as skimage_data

    folder, config = project
    photos = folder / "data" / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage_data.astronaut()).save(photos / "astronaut.png")
    (photos / "broken.jpg").write_text("not an image")
    models_dir = folder / "results" / "synthetic" / "models" / "seed"
    records = folder / "results" / "synthetic" / "predictions" / "seed" / "predictions.csv"
    targets = [path.relative_to(folder) for path in (models_dir / "model.onnx", models_dir / "model.tflite", records)]
    snakemake(folder, *targets, "--cores", "2", "--configfile", config)
    assert (models_dir / "model.onnx").stat().st_size > 10_000 and (models_dir / "model.tflite").stat().st_size > 10_000
    table = pd.read_csv(records)
    assert table["file"].str.endswith("astronaut.png").tolist() == [True]
    assert np.isclose(table[["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]].sum(axis=1), 1, atol=1e-4).all()
    assert (records.parent / "annotated" / "astronaut_annotated.png").exists()
    assert "broken.jpg: not a readable image" in (folder / "results" / "synthetic" / "logs" / "predict" / "seed.log").read_text()


def test_an_export_rule_above_the_tolerance_fails_naming_it_and_leaves_no_file(project):
    folder, config = project
    strict = write_config(folder, {"export": {"tolerance": 1e-300}}, name="strict_export.yaml")
    exported = folder / "results" / "synthetic" / "models" / "compact" / "model.tflite"
    result = snakemake(folder, exported.relative_to(folder), "--cores", "1", "--configfile", config, strict, check=False)
    assert result.returncode != 0 and not exported.exists()
    assert "above the tolerance 1e-300" in result.output


def test_predict_without_the_photos_folder_says_which_config_key_names_it(tmp_path):
    folder = copy_workflow(tmp_path / "project")
    result = snakemake(folder, "-n", "results/synthetic/predictions/seed/predictions.csv", check=False)
    assert result.returncode != 0 and "config key 'predict.images': data/photos does not exist; create it" in result.output


def test_evaluate_command_matches_the_evaluate_rule(project, capsys):
    from emotionnet import cli

    folder, _ = project
    results = folder / "results" / "synthetic"
    code = cli.main(["evaluate", str(results / "models" / "compact" / "model.keras"), str(results / "data" / "source.csv"), "--usage", "PublicTest", "--json", "--tta", "--tta-crop-shift", "2"])
    assert code == 0
    from_command = json.loads(capsys.readouterr().out)
    from_rule = json.loads((results / "models" / "compact" / "eval" / "val" / "metrics.json").read_text())
    assert from_command["n"] == from_rule["n"] == 420
    for key in ("accuracy", "macro_f1", "confusion_matrix"):
        assert from_command[key] == from_rule[key], key
    assert from_command["tta"]["accuracy"] == from_rule["tta"]["accuracy"]
    assert from_command["tta_crops"]["accuracy"] == from_rule["tta_crops"]["accuracy"]
    assert from_command["log_loss"] == pytest.approx(from_rule["log_loss"], abs=1e-6)
