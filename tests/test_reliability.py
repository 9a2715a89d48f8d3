"""Tests that try to break the pipeline: fuzzed CSVs, killed jobs, reruns, concurrent runs, NaN."""

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from hypothesis import HealthCheck, given, settings

from emotionnet import data, prepare, train
from csv_strategies import mutated_csv
from workflow_helpers import SNAKEMAKE, copy_workflow, snakemake, write_config

PREPARE_SETTINGS = {"split_fractions": {"train": 0.8, "val": 0.1, "test": 0.1}, "seed": 0, "blank_std": 2.0, "drop_blank": True, "drop_cross_split_duplicates": True}
FUZZ_CASES = {"ran": 0, "parsed": 0, "rejected": 0}


def _outputs(folder: Path) -> dict:
    outputs = {f"{split}_{kind}": folder / f"{split}_{kind}.npy" for split in data.SPLITS for kind in ("images", "labels")}
    return {**outputs, "table": folder / "table.parquet", "audit": folder / "audit.json"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_csv())
def test_fuzzed_csv_parses_or_fails_clearly_and_leaves_nothing(case):
    content, mutations = case
    FUZZ_CASES["ran"] += 1
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "fuzz.csv"
        source.write_bytes(content)
        out = Path(folder) / "out"
        try:
            summary = prepare.prepare(source, _outputs(out), **PREPARE_SETTINGS)
        except data.CsvFormatError as error:
            assert mutations, f"an undamaged CSV was rejected: {error}"
            FUZZ_CASES["rejected"] += 1
            assert str(error).startswith(str(source)) and error.problem
            assert error.line is None or 1 <= error.line <= content.count(b"\n") + 1
            assert not out.exists() or list(out.iterdir()) == [], "partial output left behind"
            return
        FUZZ_CASES["parsed"] += 1
        total = sum(part["rows"] for part in summary["splits"].values())
        table = pd.read_parquet(out / "table.parquet")
        assert len(table) == total
        for split in data.SPLITS:
            images = np.load(out / f"{split}_images.npy", allow_pickle=False)
            labels = np.load(out / f"{split}_labels.npy", allow_pickle=False)
            assert images.dtype == np.uint8 and images.shape[1:] == (48, 48) and len(images) == len(labels)
            assert labels.min(initial=0) >= 0 and labels.max(initial=0) <= 6
        if not mutations:
            assert total == content.count(b"\n") - 1


def test_fuzz_case_count_is_reported():
    """Runs after the fuzz test (file order): prints how many cases ran and how they ended."""
    if FUZZ_CASES["ran"] == 0:
        pytest.skip("run together with test_fuzzed_csv_parses_or_fails_clearly_and_leaves_nothing")
    print(f"\nfuzzed CSV cases: {FUZZ_CASES}")
    assert FUZZ_CASES["ran"] >= 400 and FUZZ_CASES["parsed"] > 0 and FUZZ_CASES["rejected"] > 0


# --- the workflow under faults -------------------------------------------------------------------


def _config(seed=42):
    return {
        "seed": seed,
        "dataset": "synthetic",
        "datasets": {
            "synthetic": {
                "source": "synthetic",
                "synthetic": {"n_images": 1400, "seed": 7, "label_noise": 0.0, "split_fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
                "models": ["seed"],
                "ensembles": {},
                "overrides": {"seed": {"epochs": 5, "batch_size": 32}},
            }
        },
    }


def _project(root: Path, name: str, seed=42):
    folder = copy_workflow(root / name)
    return folder, write_config(folder, _config(seed))


STARTED_RUNS = []


def _start(folder, config):
    """Start snakemake in the background; its output goes to a file (a pipe nobody reads would fill and block it)."""
    with open(_run_log(folder), "a") as log:
        run = subprocess.Popen([str(SNAKEMAKE), "--cores", "2", "--set-threads", "train=1", "--configfile", str(config)], cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED_RUNS.append(run)
    return run


def _run_log(folder) -> Path:
    return folder / "background-run.log"


@pytest.fixture(autouse=True)
def _stop_leftover_runs():
    """A failing test must not leave a background snakemake (and its jobs) running."""
    yield
    while STARTED_RUNS:
        run = STARTED_RUNS.pop()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=60)


def _job_process(parent: psutil.Process, script: str):
    for child in parent.children(recursive=True):
        try:
            if any(part.endswith(f".{script}.py") for part in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def _kill_job(run, script: str, ready=lambda: True, delay: float = 0.0, timeout: float = 300) -> bool:
    """SIGKILL the job process running workflow/scripts/<script>.py once ``ready()`` holds."""
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        job = _job_process(parent, script)
        if job is not None and ready():
            time.sleep(delay)
            try:
                job.kill()
                return True
            except psutil.NoSuchProcess:  # it finished within the delay: wait for the next such job
                delay /= 2
        time.sleep(0.05)
    return False


def _kill_parse(folder, config, delay: float) -> bool:
    """SIGKILL the parse job; a parse that ends before the kill lands is started over (at most 3 times)."""
    for _ in range(3):
        run = _start(folder, config)
        killed = _kill_job(run, "parse", delay=delay)
        if killed:
            run.wait(timeout=600)
            return True
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
        shutil.rmtree(folder / "results", ignore_errors=True)
        shutil.rmtree(folder / ".snakemake", ignore_errors=True)
        delay /= 2
    return False


def _results(folder):
    return folder / "results" / "synthetic"


def _history(folder):
    return pd.read_csv(_results(folder) / "models" / "seed" / "history.csv")


def _epochs_done(folder):
    state = _results(folder) / "models" / "seed" / "checkpoint" / "state.json"
    try:
        return len(json.loads(state.read_text())["history"])
    except (OSError, ValueError):
        return 0


def _same_outputs(first, second):
    for split in data.SPLITS:
        for kind in ("images", "labels"):
            name = f"{split}_{kind}.npy"
            assert np.array_equal(np.load(_results(first) / "data" / name), np.load(_results(second) / "data" / name)), name
    weights = [(_results(folder) / "models" / "seed" / "model.weights.h5").read_bytes() for folder in (first, second)]
    assert weights[0] == weights[1], "trained weights differ"
    for split in ("val", "test"):
        metrics = [json.loads((_results(folder) / "models" / "seed" / "eval" / split / "metrics.json").read_text()) for folder in (first, second)]
        assert metrics[0] == metrics[1], split
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    pd.testing.assert_frame_equal(_history(first)[columns], _history(second)[columns])


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    folder, config = _project(tmp_path_factory.mktemp("reliability"), "reference")
    snakemake(folder, "--cores", "2", "--set-threads", "train=1", "--configfile", config)
    return folder


@pytest.mark.slow
def test_same_config_twice_gives_identical_outputs_and_a_concurrent_run_is_locked_out(reference_run, tmp_path):
    folder, config = _project(tmp_path, "again")
    first = _start(folder, config)
    locks = folder / ".snakemake" / "locks"
    deadline = time.monotonic() + 120
    while not (locks.exists() and any(locks.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert locks.exists() and any(locks.iterdir()), "the first run never locked the folder"
    second = snakemake(folder, "--cores", "1", "--configfile", config, check=False)
    # Snakemake checks for incomplete outputs before it takes the lock: once the first run has
    # started a job, the second is refused for that job's outputs instead (a loaded machine gets there)
    refusals = ("cannot be locked", "IncompleteFilesException")
    assert second.returncode != 0 and any(refusal in second.output for refusal in refusals), second.output[-2000:]
    assert first.wait(timeout=900) == 0, _run_log(folder).read_text()[-3000:]
    _same_outputs(reference_run, folder)


@pytest.mark.slow
def test_killed_parse_train_and_report_jobs_recover_to_the_same_outputs(reference_run, tmp_path):
    folder, config = _project(tmp_path, "killed")
    seed = int(os.environ.get("KILL_SEED", random.randrange(2**32)))  # KILL_SEED=<seed> replays a failure
    chooser = random.Random(seed)
    kills = {}
    # 1. the parse job, at a random moment of its life
    kills["parse"] = _kill_parse(folder, config, delay=chooser.uniform(0, 0.5))
    # 2. the train job, mid-way through a random epoch; its retry (retries: 1) resumes from the checkpoint
    kill_after = chooser.randint(1, 3)
    run = _start(folder, config)
    kills["train"] = _kill_job(run, "train", ready=lambda: _epochs_done(folder) >= kill_after, delay=chooser.uniform(0, 0.5))
    # 3. a report job (figures), at a random moment
    kills["report"] = _kill_job(run, "plot_evaluation", delay=chooser.uniform(0, 0.5))
    run.wait(timeout=900)
    # the next plain run redoes whatever is incomplete
    snakemake(folder, "--cores", "2", "--set-threads", "train=1", "--configfile", config)
    assert kills == {"parse": True, "train": True, "report": True}, f"KILL_SEED={seed}: {kills}"
    train_log = (_results(folder) / "logs" / "train" / "seed.log").read_text()
    assert f"resuming from epoch {kill_after}" in train_log or f"resuming from epoch {kill_after + 1}" in train_log, f"KILL_SEED={seed}\n" + train_log[-2000:]
    assert _history(folder)["epoch"].tolist() == [1, 2, 3, 4, 5]
    _same_outputs(reference_run, folder)
    assert snakemake(folder, "-n", "--configfile", config).output.count("Nothing to be done") == 1


def _assert_same_weights(first, second):
    for one, other in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(one, other)


CROP_RUN = {"architecture": "vgg_bn", "hyperparameters": {"widths": [8, 16], "convs_per_stage": 1}, "crop": 40, "augment": {"flip": True}}


@pytest.mark.parametrize(
    "extra_settings",
    [{}, {"weight_average_decay": 0.9}, CROP_RUN, {"sam_rho": 0.05}],
    ids=["plain", "weight_average", "crop", "sharpness_aware"],
)
def test_a_resumed_training_gives_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch, extra_settings):
    """Checkpoint and resume in one process: also the Dropout layers' random state (and the
    weight average, when on; a crop run's any-size model; a sharpness-aware one's training step)
    must carry over. The kept (best) weights
    may predate the interruption, so the last epoch's weights and every epoch's losses are compared
    too."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 256)
    settings = {"architecture": "seed", "epochs": 3, "batch_size": 64, **extra_settings}

    def run(folder):
        return train.train(images, labels, images[:64], labels[:64], settings=settings, seed=1, checkpoint_dir=folder)

    uninterrupted, whole_history = run(tmp_path / "whole")
    fit_epoch = train._fit_epoch

    def interrupted_in_epoch_3(model, train_dataset, val_dataset, epoch, *arguments):
        if epoch == 2:
            raise KeyboardInterrupt
        return fit_epoch(model, train_dataset, val_dataset, epoch, *arguments)

    monkeypatch.setattr(train, "_fit_epoch", interrupted_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.setattr(train, "_fit_epoch", fit_epoch)
    resumed, history = run(tmp_path / "resumed")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    _assert_same_weights(uninterrupted, resumed)
    import keras

    _assert_same_weights(*(keras.saving.load_model(tmp_path / name / "last.keras") for name in ("whole", "resumed")))

    def untimed(rows):
        return [{key: value for key, value in row.items() if key not in ("epoch_seconds", "elapsed_seconds")} for row in rows]

    assert untimed(history) == untimed(whole_history)
    if "weight_average_decay" in extra_settings:  # the kept weights may predate the interruption; the average may not
        with np.load(tmp_path / "whole" / "average.npz") as whole, np.load(tmp_path / "resumed" / "average.npz") as again:
            assert sorted(whole) == sorted(again) and int(whole["step"]) == 12
            for name in whole:
                np.testing.assert_array_equal(whole[name], again[name])


def test_several_steps_per_call_give_the_weights_of_one_step_per_call(tmp_path, monkeypatch):
    """Keras runs train.STEPS_PER_CALL steps per call into TensorFlow: an epoch of 10 steps (not a
    multiple of it, the last batch short) with dropout, augmentation and class weights must end
    with the same weights as one step per call."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 300)
    settings = {"architecture": "seed", "epochs": 2, "batch_size": 32, "augment": {"flip": True, "translate": 0.1, "erase": 0.3}, "class_weight": "balanced"}
    assert train.STEPS_PER_CALL > 1 and train.build_compiled_model({**train.DEFAULTS, **settings}, 10).steps_per_execution == train.STEPS_PER_CALL
    assert train.build_compiled_model({**train.DEFAULTS, **settings, "weight_average_decay": 0.9}, 10).steps_per_execution == 1
    several, _ = train.train(images, labels, images[:64], labels[:64], settings=settings, seed=1, checkpoint_dir=tmp_path / "several")
    monkeypatch.setattr(train, "STEPS_PER_CALL", 1)
    one, _ = train.train(images, labels, images[:64], labels[:64], settings=settings, seed=1, checkpoint_dir=tmp_path / "one")
    _assert_same_weights(several, one)


def test_another_seed_gives_other_weights(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 128)
    settings = {"architecture": "seed", "epochs": 1, "batch_size": 32}
    weights = []
    for seed in (1, 1, 2):
        model, _ = train.train(images, labels, images[:32], labels[:32], settings=settings, seed=seed, checkpoint_dir=tmp_path / f"checkpoint{len(weights)}")
        weights.append(np.concatenate([value.ravel() for value in model.get_weights()]))
    assert np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[0], weights[2])


def test_nan_loss_stops_training_with_a_clear_message_and_no_model(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 256)
    settings = {"architecture": "seed", "epochs": 3, "batch_size": 64, "optimizer": "sgd", "learning_rate": 1e12}
    with pytest.raises(FloatingPointError, match="training diverged"):
        train.train(images, labels, images[:64], labels[:64], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert not (tmp_path / "checkpoint" / "best.weights.h5").exists()


def test_training_over_its_memory_budget_stops_with_a_clear_message_and_no_model(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 256)
    settings = {"architecture": "seed", "epochs": 2, "batch_size": 64}
    # a Python process with TensorFlow loaded is far above 50 MB, so the guard must stop the first epoch
    with pytest.raises(train.TrainingMemoryError, match=r"over the job's budget of 50 MB \(resources mem_mb\); no model was written"):
        train.train(images, labels, images[:64], labels[:64], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint", memory_budget_mb=50)
    assert not (tmp_path / "checkpoint").exists()


def test_memory_does_not_grow_from_epoch_to_epoch(tmp_path, monkeypatch):
    """Every epoch gathers from the same image tensors: a pipeline that copied the images each
    epoch kept every copy (here 2 x 44 MB per epoch with the mirrored copy), and a 64-epoch
    FER2013 run then outgrew its 8 GB budget."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20_000, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, len(images))
    settings = {"architecture": "vgg_bn", "hyperparameters": {"widths": [4, 8], "convs_per_stage": 1}, "epochs": 6, "batch_size": 1000, "augment": {"flip": True}}
    resident_mb, fit_epoch = [], train._fit_epoch

    def measured(*arguments):
        logs = fit_epoch(*arguments)
        resident_mb.append(psutil.Process().memory_info().rss / 2**20)
        return logs

    monkeypatch.setattr(train, "_fit_epoch", measured)
    train.train(images, labels, images[:500], labels[:500], settings=settings, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    leak_per_epoch_mb = 2 * images.nbytes / 2**20
    assert resident_mb[-1] - resident_mb[1] < leak_per_epoch_mb, resident_mb


def test_tensorflow_out_of_memory_becomes_a_clear_message(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,32,46,46]")

    monkeypatch.setattr(keras.Model, "fit", exhausted)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    with pytest.raises(train.TrainingMemoryError, match="out of memory in epoch 1: OOM when allocating"):
        train.train(images, rng.integers(0, 7, 64), images, rng.integers(0, 7, 64), settings={"architecture": "seed", "epochs": 1}, seed=0, checkpoint_dir=tmp_path / "checkpoint")
    assert not (tmp_path / "checkpoint").exists()


def test_arrays_are_loaded_without_pickle(tmp_path):
    np.save(tmp_path / "images.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "labels.npy", np.zeros(1, np.int8))
    with pytest.raises(ValueError, match="allow_pickle"):
        prepare.load_arrays(tmp_path / "images.npy", tmp_path / "labels.npy")
