"""Config validation and the helpers that turn config into rule inputs and params.

Nothing here imports TensorFlow: parsing the DAG stays fast."""

import copy
import re
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def validate_config(config):
    """The schema check (it also fills in defaults), failing with one line that names the config
    key and the problem instead of Snakemake's dump of the whole schema and config."""
    try:
        validate(config, schema=workflow.source_path("../schemas/config.schema.yaml"))
    except WorkflowError as error:
        cause = error.__context__   # Snakemake raises while handling jsonschema's error
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        where = f"config key '{'.'.join(map(str, cause.path))}'" if cause.path else "config (top level)"
        message = cause.message
        if "propertyNames" in cause.schema_path and cause.validator == "type":
            message = f"name {cause.instance!r} is not text: quote it in the YAML ('{cause.instance}')"
        elif "propertyNames" in cause.schema_path:
            message = f"name {cause.instance!r} not allowed: names become folder names under results/, so use only letters, digits, '_', '.' and '-', starting with a letter or digit"
        raise ValueError(f"{where}: {message}") from None


validate_config(config)

# Each architecture's hyperparameters are checked against its entry in the schema's $defs, with
# integers that must be ints (2.0 would pass JSON Schema's "integer" and then fail inside Keras).
_DEFINITIONS = yaml.safe_load(Path(workflow.source_path("../schemas/config.schema.yaml")).read_text())["$defs"]
_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)
HYPERPARAMETER_VALIDATORS = {
    architecture: _Validator({"$ref": f"#/$defs/hyperparameters/{architecture}", "$defs": _DEFINITIONS})
    for architecture in _DEFINITIONS["hyperparameters"]
}

SPLITS = ["train", "val", "test"]
EVAL_SPLITS = ["val", "test"]
DATASET = config["dataset"]


def _merge(base, update):
    merged = copy.deepcopy(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _model_block(dataset, model):
    """The model's config block with the dataset's overrides merged in."""
    return _merge(config["models"][model], config["datasets"][dataset].get("overrides", {}).get(model, {}))


def _check_hyperparameters(block, model, dataset):
    """A model block's hyperparameters (dataset overrides merged in) against its architecture's
    entry in the schema."""
    architecture, hyperparameters = block["architecture"], block.get("hyperparameters", {})
    overridden = set(config["datasets"][dataset].get("overrides", {}).get(model, {})) & {"architecture", "hyperparameters"}
    merged = f" with datasets.{dataset}.overrides.{model} merged in" if overridden else ""
    try:
        HYPERPARAMETER_VALIDATORS[architecture].validate(hyperparameters)
    except jsonschema.ValidationError as error:
        key = ".".join(["models", model, "hyperparameters", *map(str, error.path)])
        raise ValueError(f"config key '{key}'{merged} (dataset {dataset}, architecture {architecture}): {error.message}") from None
    blocks = hyperparameters.get("blocks_per_stage")
    if isinstance(blocks, list):
        widths = hyperparameters.get("widths", _DEFINITIONS["hyperparameters"][architecture]["properties"]["widths"]["default"])
        if len(blocks) != len(widths):
            raise ValueError(f"config key 'models.{model}.hyperparameters.blocks_per_stage'{merged} (dataset {dataset}, architecture {architecture}): {len(blocks)} numbers for {len(widths)} stages (widths {widths}); give one number per stage, or a single number for all")


def _check_teacher(block, model, dataset):
    """Distillation needs both a teacher (defined models other than the model itself) and a weight."""
    teachers, weight = block.get("teacher", []), block.get("distillation", 0)
    unknown = [teacher for teacher in teachers if teacher not in config["models"] or teacher == model]
    if unknown:
        raise ValueError(f"config key 'models.{model}.teacher' (dataset {dataset}): {unknown} must be defined models other than {model!r}")
    if bool(teachers) != bool(weight):
        raise ValueError(f"config key 'models.{model}' (dataset {dataset}): 'teacher' and 'distillation' go together (teacher {teachers}, distillation {weight})")


def _check_config():
    datasets, models = config["datasets"], config["models"]
    if DATASET not in datasets:
        raise ValueError(f"config key 'dataset': {DATASET!r} is not one of datasets: {', '.join(datasets)}")
    for name, dataset in datasets.items():
        for model in dataset["models"]:
            if model not in models:
                raise ValueError(f"config key 'datasets.{name}.models': unknown model {model!r}; defined: {', '.join(models)}")
        for model in dataset.get("overrides", {}):
            if model not in models:
                raise ValueError(f"config key 'datasets.{name}.overrides.{model}': no such model")
        for model in models:  # every model, not only the listed ones: any can be asked for by path
            block = _model_block(name, model)
            _check_hyperparameters(block, model, name)
            _check_teacher(block, model, name)
            # only global pooling takes crops: these flatten a 48x48 feature map (the schema allows 'head' on vgg_bn only)
            flattening = "'seed'" if block["architecture"] == "seed" else "'vgg_bn' with head flatten" if block.get("hyperparameters", {}).get("head") == "flatten" else ""
            if block.get("crop") and flattening:
                raise ValueError(f"config key 'models.{model}.crop' (dataset {name}): architecture {flattening} takes only 48x48 images, so it cannot train on crops")
        for ensemble, members in dataset.get("ensembles", {}).items():
            unknown = [member for member in members if member not in dataset["models"]]
            if unknown:
                raise ValueError(f"config key 'datasets.{name}.ensembles.{ensemble}': {unknown} not in datasets.{name}.models")


_check_config()

wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    model="|".join(map(re.escape, config["models"])),
    split="train|val|test",
    eval_split="val|test",


def dataset_models(dataset):
    return config["datasets"][dataset]["models"]


def dataset_ensembles(dataset):
    return config["datasets"][dataset].get("ensembles", {})


def model_settings(wildcards):
    """The model's config block with the dataset's overrides merged in (without the seed)."""
    settings = _model_block(wildcards.dataset, wildcards.model)
    settings.pop("seed", None)
    return settings


def model_seed(wildcards):
    return _model_block(wildcards.dataset, wildcards.model).get("seed", config["seed"])


def teacher_probability_files(wildcards):
    """The stored training-set probabilities of the model's teachers (none without distillation)."""
    teachers = _model_block(wildcards.dataset, wildcards.model).get("teacher", [])
    return [f"results/{wildcards.dataset}/models/{teacher}/train_probabilities.npy" for teacher in teachers]


def checkpoint_dir(wildcards):
    return f"results/{wildcards.dataset}/models/{wildcards.model}/checkpoint"


def csv_source(wildcards):
    """The raw CSV of a dataset: generated for 'synthetic', the user's file for 'csv'."""
    dataset = config["datasets"][wildcards.dataset]
    if dataset["source"] == "synthetic":
        return f"results/{wildcards.dataset}/data/source.csv"
    path = Path(dataset["csv"])
    if not path.exists() and Path(f"{path}.gz").exists():
        return f"{path}.gz"
    if not path.exists():
        alternative = "" if path.suffix == ".gz" else f" (nor {path}.gz)"
        raise FileNotFoundError(f"datasets.{wildcards.dataset}.csv: {path} does not exist{alternative}; see data/README.md")
    return str(path)


def synthetic_settings(wildcards):
    return config["datasets"][wildcards.dataset]["synthetic"]


def parse_settings(wildcards):
    parse = config["parse"]
    return {
        "split_fractions": parse["split_fractions"],
        "seed": parse["split_seed"],
        "blank_std": parse["blank_std"],
        "drop_blank": parse["drop_blank_from_train"],
        "drop_cross_split_duplicates": parse["drop_cross_split_duplicates_from_train"],
        "chunk_bytes": int(parse["chunk_mb"] * 2**20),
    }


def train_gpus(wildcards):
    return config.get("resources", {}).get("train_gpus", 0)


def train_gpu_model(wildcards):
    """The GPU model SLURM should give training jobs ('' = any, or no GPU at all)."""
    resources = config.get("resources", {})
    return (resources.get("train_gpu_model") or "") if resources.get("train_gpus", 0) else ""


def ensemble_models(wildcards):
    members = dataset_ensembles(wildcards.dataset)[wildcards.ensemble]
    return [f"results/{wildcards.dataset}/models/{member}/model.keras" for member in members]


def photos_folder(wildcards):
    """The folder of config `predict.images`, which must exist when a prediction is asked for."""
    folder = config["predict"]["images"]
    if Path(folder).is_file():
        raise ValueError(f"config key 'predict.images': {folder} is a file; name a folder of photos (--config predict.images=PATH)")
    if not Path(folder).is_dir():
        raise ValueError(f"config key 'predict.images': {folder} does not exist; create it and put the photos to classify in it, or name your folder with --config predict.images=PATH")
    return folder


def model_dir(dataset, model):
    return f"results/{dataset}/models/{model}"


def final_outputs():
    """Everything `snakemake` builds by default for the configured dataset."""
    root = f"results/{DATASET}"
    outputs = [f"{root}/report/models.csv", f"{root}/report/time_to_accuracy.png", f"{root}/report/class_distribution.png"]
    for model in dataset_models(DATASET):
        outputs.append(f"{model_dir(DATASET, model)}/summary.md")
        outputs += [f"{model_dir(DATASET, model)}/report/{split}/confusion.png" for split in EVAL_SPLITS]
        outputs.append(f"{model_dir(DATASET, model)}/report/curves.png")
    for ensemble in dataset_ensembles(DATASET):
        outputs += [f"{root}/ensembles/{ensemble}/eval/{split}/metrics.json" for split in EVAL_SPLITS]
    return outputs
