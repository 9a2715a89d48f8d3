"""Reads the config file before Snakemake does, so that a YAML mistake is reported with its line and
column (Snakemake says only that the file is not valid JSON or YAML). Files given with --configfile
are read by Snakemake alone."""

import json

import yaml


def check_config_syntax(path):
    """Raise a one-line error naming the line and column of a syntax mistake in ``path``."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        return  # Snakemake's own message names the missing file
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        json.loads(text)   # Snakemake reads JSON first, and accepts what YAML would refuse (tabs)
        return
    except json.JSONDecodeError:
        pass
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(filter(None, [getattr(error, "context", None), getattr(error, "problem", None)])) or str(error)
        raise ValueError(f"{path}: {where}not valid YAML: {problem}") from None


check_config_syntax(CONFIG_FILE)
