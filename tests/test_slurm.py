"""The DAG through a real SLURM (`make test-cluster`, or `make test` with CI=true): every job is a
SLURM job, a training job killed mid-epoch is resubmitted and resumes from its checkpoint."""

import json
import os
import shutil
import subprocess
import threading
import time

import pandas as pd
import psutil
import pytest

from workflow_helpers import REPO, SNAKEMAKE, copy_workflow, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PLUGINS = REPO / ".slurm-plugins"
CONFIG = {
    "dataset": "synthetic",
    "datasets": {
        "synthetic": {
            "source": "synthetic",
            "synthetic": {"n_images": 1400, "seed": 3, "label_noise": 0.0, "split_fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
            "models": ["seed", "compact"],
            "ensembles": {"both": ["seed", "compact"]},
            "overrides": {"seed": {"epochs": 4, "batch_size": 32}, "compact": {"epochs": 2}},
        }
    },
}


def _slurm_ready() -> str | None:
    """None if a SLURM controller answers and the executor plugin is installed, else the reason."""
    if os.environ.get("CI") == "true":
        return None  # in CI the cluster must be there: fail loudly below rather than skip
    if shutil.which("sinfo") is None:
        return "SLURM client tools not installed (make test-cluster sets SLURM up)"
    if subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode != 0:
        return "no SLURM controller answers (make test-cluster starts one)"
    if not (PLUGINS / "snakemake_executor_plugin_slurm").exists():
        return f"executor plugin not in {PLUGINS} (make test-cluster installs it)"
    return None


def _checkpointed_epochs(state) -> int:
    try:
        return len(json.loads(state.read_text())["history"])
    except (OSError, ValueError):
        return 0


def _kill_train_after_first_epoch(folder, killed: dict):
    """SIGKILL the seed model's training process (a SLURM job step) once it checkpointed epoch 1."""
    state = folder / "results" / "synthetic" / "models" / "seed" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not killed.get("done"):
        if _checkpointed_epochs(state) >= 1:
            for process in psutil.process_iter(["cmdline", "cwd"]):
                try:
                    cmdline = process.info["cmdline"] or []
                    if process.info["cwd"] != str(folder) or not any(part.endswith(".train.py") for part in cmdline):
                        continue
                    if any(item.path.endswith("train/seed.log") for item in process.open_files()):
                        process.kill()
                        process.wait(timeout=30)
                        killed["epochs_before_kill"] = _checkpointed_epochs(state)  # read again: one more may have ended
                        return
                except psutil.Error:
                    continue
        time.sleep(0.2)


def test_dag_runs_as_slurm_jobs_and_a_killed_training_resumes(tmp_path):
    reason = _slurm_ready()
    if reason:
        pytest.skip(reason)
    folder = copy_workflow(tmp_path / "project")
    shutil.copytree(REPO / "tests" / "slurm" / "profile", folder / "profile")
    config = write_config(folder, CONFIG)
    environment = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(PLUGINS)}
    killed = {}
    killer = threading.Thread(target=_kill_train_after_first_epoch, args=(folder, killed), daemon=True)
    killer.start()
    command = ["timeout", "-k", "10", "900", str(SNAKEMAKE), "--profile", "profile", "--configfile", str(config)]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=environment)
    killed["done"] = True
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Submitted job" in output or "submitted" in output.lower(), output[-3000:]
    results = folder / "results" / "synthetic"
    for model, epochs in (("seed", 4), ("compact", 2)):
        history = pd.read_csv(results / "models" / model / "history.csv")
        assert history["epoch"].tolist() == list(range(1, epochs + 1)), model
        for split in ("val", "test"):
            assert json.loads((results / "models" / model / "eval" / split / "metrics.json").read_text())["n"] == 210
    assert json.loads((results / "ensembles" / "both" / "eval" / "val" / "metrics.json").read_text())["n"] == 210
    assert (results / "report" / "models.csv").exists()
    # every job ran under SLURM: the plugin keeps one log per SLURM job
    slurm_logs = list((folder / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(slurm_logs) >= 10, slurm_logs
    assert "epochs_before_kill" in killed, "the training job was not caught mid-run"
    train_log = (results / "logs" / "train" / "seed.log").read_text()
    assert f"resuming from epoch {killed['epochs_before_kill']}" in train_log, train_log[-2000:]
