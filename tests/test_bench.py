"""The benchmark scripts stay runnable: each one on a small synthetic CSV, ending with its SUMMARY
line (timings are never checked here)."""

import subprocess
import sys
from pathlib import Path

import pytest

from emotionnet import models, synthetic

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    images, labels, usage = synthetic.generate(400, seed=3)
    path = tmp_path_factory.mktemp("bench") / "small.csv"
    synthetic.write_csv(path, images, labels, usage)
    return path


def run_bench(script, *arguments):
    result = subprocess.run([sys.executable, str(BENCH / script), *map(str, arguments)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("SUMMARY")]
    assert len(summary) == 1, result.stdout[-3000:]
    return summary[0]


def test_parse_benchmark(small_csv):
    assert run_bench("parse.py", "--csv", small_csv, "--repeats", "1", "--scale", "2").startswith("SUMMARY parse: ")


def test_train_throughput_benchmark(small_csv):
    line = run_bench("train_throughput.py", "--csv", small_csv, "--images", "128", "--repeats", "1", "--models", "compact")
    assert "plain fit without augmentation" in line and "of the fp32 peak" in line


def test_fit_stalls_benchmark(small_csv):
    line = run_bench("fit_stalls.py", "--csv", small_csv, "--images", "128", "--repeats", "2", "--models", "compact")
    assert line.count("/2") == 3  # each contender's late passes out of its two


def test_predict_throughput_benchmark(small_csv, tmp_path):
    model = tmp_path / "compact.keras"
    models.build("mini_xception").save(model)
    assert run_bench("predict_throughput.py", "--csv", small_csv, "--models", model, "--repeats", "1").startswith("SUMMARY predict: ")
