"""Run the workflow in a scratch copy of the project, as a user would from the command line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def copy_workflow(target: Path) -> Path:
    """A fresh project folder holding the Snakefile, workflow/ and config/ of this checkout."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", target / "Snakefile")
    for folder in ("workflow", "config"):
        shutil.copytree(REPO / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def write_config(folder: Path, config: dict, name="test.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(folder: Path, *arguments, check=True, timeout=900):
    """Run snakemake in ``folder``; returns the CompletedProcess (stdout and stderr joined)."""
    environment = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(SNAKEMAKE), *map(str, arguments)], cwd=folder, capture_output=True, text=True, timeout=timeout, env=environment)
    result.output = result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, arguments))} failed:\n{result.output[-6000:]}")
    return result


def planned_rules(output: str) -> dict:
    """Rule name -> job count, from the job-stats table that a (dry) run prints."""
    rules, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
        elif in_table and line.strip() and not line.startswith("-"):
            name = line.split()[0]
            if name == "total":
                break
            rules[name] = int(line.split()[1])
    return rules
