"""Reads config/config.yaml before Snakemake does, so that a YAML mistake is reported with its line
and column (Snakemake says only that the file is not valid JSON or YAML)."""

import yaml


def check_yaml_syntax(path):
    try:
        with open(path, encoding="utf-8") as stream:
            yaml.safe_load(stream)
    except FileNotFoundError:
        return  # Snakemake's own message names the missing file
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(filter(None, [getattr(error, "context", None), getattr(error, "problem", None)])) or str(error)
        raise ValueError(f"{path}: {where}not valid YAML: {problem}") from None


check_yaml_syntax("config/config.yaml")
