"""Real FER2013 rows (the development CSV, subsampled) through the whole DAG."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_dev_csv
from workflow_helpers import copy_workflow, snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def test_subsampled_fer2013_beats_the_majority_class(tmp_path):
    source = require_dev_csv()
    frame = pd.read_csv(source)
    train = frame[frame["Usage"] == "Training"].sample(n=3000, random_state=0)
    val = frame[frame["Usage"] == "PublicTest"]
    folder = copy_workflow(tmp_path / "project")
    pd.concat([train, val]).to_csv(folder / "fer_small.csv", index=False)
    config = write_config(
        folder,
        {"dataset": "fer_small", "evaluate": {"tta": False, "tta_crop_shift": 0}, "datasets": {"fer_small": {"source": "csv", "csv": "fer_small.csv", "models": ["seed"], "overrides": {"seed": {"epochs": 5}}}}},
    )
    snakemake(folder, "results/fer_small/models/seed/summary.md", "--cores", "2", "--configfile", config)
    results = folder / "results" / "fer_small"
    val_metrics = json.loads((results / "models" / "seed" / "eval" / "val" / "metrics.json").read_text())
    test_metrics = json.loads((results / "models" / "seed" / "eval" / "test" / "metrics.json").read_text())
    labels = np.load(results / "data" / "val_labels.npy")
    majority = np.bincount(labels).max() / len(labels)
    assert val_metrics["n"] == 3589
    assert val_metrics["accuracy"] > majority + 0.05, (val_metrics["accuracy"], majority)
    assert test_metrics["available"] is False  # the development CSV has no PrivateTest rows
    assert "no rows" in (results / "models" / "seed" / "summary.md").read_text()
