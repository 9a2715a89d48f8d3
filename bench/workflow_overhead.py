"""Workflow overhead: how long `snakemake -n` (DAG building) and a no-op `snakemake --cores all`
take on the default DAG. Runs a tiny copy of the default configuration once in a scratch folder
(1 epoch per model, 700 synthetic images), then times the two commands.

    python bench/workflow_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, cpu_description, median  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def timed(folder, *arguments):
    start = time.perf_counter()
    result = subprocess.run([str(SNAKEMAKE), *arguments], cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(arguments)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy2(REPO / "Snakefile", folder)
        for name in ("workflow", "config"):
            shutil.copytree(REPO / name, Path(folder) / name)
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        tiny = {"datasets": {"synthetic": {**config["datasets"]["synthetic"], "overrides": {model: {"epochs": 1} for model in config["datasets"]["synthetic"]["models"]}}}}
        tiny["datasets"]["synthetic"]["synthetic"] = {**tiny["datasets"]["synthetic"]["synthetic"], "n_images": 700}
        (Path(folder) / "tiny.yaml").write_text(yaml.safe_dump(tiny))
        build_seconds, _ = timed(folder, "--cores", "all", "--configfile", "tiny.yaml")
        dry, noop = [], []
        for _ in range(args.repeats):
            dry.append(timed(folder, "-n", "--configfile", "tiny.yaml")[0])
            seconds, output = timed(folder, "--cores", "all", "--configfile", "tiny.yaml")
            assert "Nothing to be done" in output, output[-2000:]
            noop.append(seconds)
    print(f"machine: {cpu_description()}")
    print(f"first full run of the tiny default DAG: {build_seconds:.1f} s")
    print(f"{'command':<40}{'median s':>10}{'max s':>8}")
    print(f"{'snakemake -n (whole default DAG)':<40}{median(dry):>10.2f}{max(dry):>8.2f}")
    print(f"{'snakemake --cores all (nothing to do)':<40}{median(noop):>10.2f}{max(noop):>8.2f}")
    print(f"SUMMARY workflow: dry run {median(dry):.2f} s, no-op run {median(noop):.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
