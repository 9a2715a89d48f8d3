"""The parse stage: a FER2013-format CSV becomes cached split arrays, a per-image table and an audit.

Outputs (all written under temporary names and moved into place only when everything succeeded):
``{split}_images.npy`` (uint8, N x 48 x 48), ``{split}_labels.npy`` (int8) for train/val/test,
``table.parquet`` (one row per CSV data row) and ``audit.json``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from emotionnet import data

log = logging.getLogger(__name__)

ROW_BLOCK = 8192  # rows copied at a time when the split arrays are assembled


def has_usage(split_codes) -> bool:
    """Whether the rows came with a Usage column (their split codes are then all known)."""
    return bool((split_codes != data.NO_USAGE).all())


def assign_splits(split_codes, labels, fractions: dict, seed: int) -> np.ndarray:
    """Split names per row: from Usage where present, else stratified by label from ``fractions``."""
    names = np.array(list(data.USAGE_TO_SPLIT.values()))
    if has_usage(split_codes):
        return names[split_codes]
    rng = np.random.default_rng(seed)
    splits = np.empty(len(labels), dtype=object)
    total = sum(fractions.values())
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.round(np.cumsum([fractions[name] / total for name in data.SPLITS]) * len(rows)).astype(int)
        for name, part in zip(data.SPLITS, np.split(rows, bounds[:-1])):
            splits[part] = name
    return splits.astype(str)


def build_table(parsed_rows: dict, blank_std: float) -> pd.DataFrame:
    """Per-image table: source line, label, split, mean/std, blank flag, content hash, duplicates."""
    table = pd.DataFrame(
        {
            "line": parsed_rows["line_numbers"],
            "label": parsed_rows["labels"],
            "emotion": np.array(data.EMOTIONS)[parsed_rows["labels"]],
            "split": parsed_rows["splits"],
            "mean": parsed_rows["means"],
            "std": parsed_rows["stds"],
            "hash": [f"{value:016x}" for value in parsed_rows["hashes"].tolist()],
        }
    )
    table["blank"] = table["std"] < blank_std
    splits_per_hash = table.groupby("hash")["split"].nunique()
    table["in_other_split"] = table["hash"].map(splits_per_hash).to_numpy() > 1
    table["duplicate_in_split"] = table.duplicated(["split", "hash"], keep="first")
    return table


def choose_rows(table: pd.DataFrame, drop_blank: bool, drop_cross_split_duplicates: bool) -> pd.Series:
    """Which rows go into the split arrays: everything, minus the configured drops from train."""
    in_train = table["split"] == "train"
    dropped = pd.Series(False, index=table.index)
    if drop_blank:
        dropped |= in_train & table["blank"]
    if drop_cross_split_duplicates:
        dropped |= in_train & table["in_other_split"]
    return ~dropped


def require_train_and_val(table: pd.DataFrame, used: pd.Series, csv_path, has_usage: bool) -> None:
    """Training needs rows in the train and the val split; fail naming the CSV and why otherwise."""
    for split, usage in (("train", "Training"), ("val", "PublicTest")):
        in_split = table["split"] == split
        if (used & in_split).any():
            continue
        if not has_usage:
            problem = f"the stratified split (parse.split_fractions) left no rows for the {split} split: too few rows per class"
        elif in_split.any():
            problem = f"all {int(in_split.sum())} {usage} rows were dropped as blank or as copies of validation/test images (parse.drop_*)"
        else:
            problem = f"no {usage} rows: training needs Training and PublicTest rows"
        raise data.CsvFormatError(csv_path, None, problem)


def audit(table: pd.DataFrame, used: pd.Series, source, blank_std: float, *, splits_from: str) -> dict:
    """Counts per class and split, blank images, duplicates within and across splits."""
    report = {"source": str(source), "rows": len(table), "splits_from": splits_from, "splits": {}, "cross_split_duplicates": {}}
    for split in data.SPLITS:
        rows = table[table["split"] == split]
        counts = rows["emotion"].value_counts()
        report["splits"][split] = {
            "rows": len(rows),
            "used": int(used[rows.index].sum()),
            "per_class": {name: int(counts.get(name, 0)) for name in data.EMOTIONS},
            "blank": int(rows["blank"].sum()),
            "duplicates_within": int(rows["duplicate_in_split"].sum()),
        }
    for index, first in enumerate(data.SPLITS):
        for second in data.SPLITS[index + 1 :]:
            shared = set(table.loc[table["split"] == first, "hash"]) & set(table.loc[table["split"] == second, "hash"])
            report["cross_split_duplicates"][f"{first}-{second}"] = len(shared)
    labels_per_hash = table.groupby("hash")["label"].nunique()
    report["hashes_with_conflicting_labels"] = int((labels_per_hash > 1).sum())
    report["blank_std_threshold"] = blank_std
    report["dropped_from_train"] = int((~used & (table["split"] == "train")).sum())
    report["has_test_split"] = bool((table["split"] == "test").any())
    return report


def _stream_images(csv_path, raw_file, chunk_bytes, workers):
    """Parse the CSV, append its images to ``raw_file`` and return the small per-row arrays."""
    columns = {name: [] for name in ("labels", "split_codes", "line_numbers", "hashes", "means", "stds")}
    for chunk in data.iter_parsed_chunks(csv_path, chunk_bytes, workers):
        raw_file.write(chunk.images.tobytes())
        flat = chunk.images.reshape(len(chunk.images), -1)
        columns["labels"].append(chunk.labels)
        columns["split_codes"].append(chunk.split_codes)
        columns["line_numbers"].append(chunk.line_numbers)
        columns["hashes"].append(data.content_hashes(chunk.images))
        columns["means"].append(flat.mean(axis=1, dtype=np.float32))
        columns["stds"].append(flat.std(axis=1, dtype=np.float32))
    rows = {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in columns.items()}
    if len(rows["labels"]) == 0:
        raise data.CsvFormatError(csv_path, None, "no data rows (the file holds only a header)")
    return rows


def _write_split(all_images, rows, images_path, labels_path, labels):
    """Copy the chosen rows of the memory-mapped image file into a new .npy, block by block."""
    images = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=(len(rows), data.IMAGE_SIDE, data.IMAGE_SIDE))
    for start in range(0, len(rows), ROW_BLOCK):
        images[start : start + ROW_BLOCK] = all_images[rows[start : start + ROW_BLOCK]]
    images.flush()
    del images
    np.save(labels_path, labels[rows].astype(np.int8))


def prepare(csv_path, outputs: dict, *, split_fractions: dict, seed: int, blank_std: float, drop_blank: bool, drop_cross_split_duplicates: bool, chunk_bytes: int = data.DEFAULT_CHUNK_BYTES, workers: int = 1) -> dict:
    """Parse ``csv_path`` and write every output named in ``outputs`` (keys: ``{split}_images``,
    ``{split}_labels``, ``table``, ``audit``). Nothing is left behind if parsing fails."""
    final_paths = {key: Path(value) for key, value in outputs.items()}
    for path in final_paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    scratch_dir = next(iter(final_paths.values())).parent
    with data.atomic_outputs(final_paths) as partial:
        with tempfile.NamedTemporaryFile(dir=scratch_dir, prefix=".images.", suffix=".raw") as raw_file:
            rows = _stream_images(csv_path, raw_file, chunk_bytes, workers)
            raw_file.flush()
            rows["splits"] = assign_splits(rows["split_codes"], rows["labels"], split_fractions, seed)
            from_usage = has_usage(rows["split_codes"])
            splits_from = "the Usage column" if from_usage else f"a split by label: parse.split_fractions {split_fractions}, parse.split_seed {seed}"
            if not from_usage:
                log.info("%s has no Usage column: its rows get %s", csv_path, splits_from)
            table = build_table(rows, blank_std)
            used = choose_rows(table, drop_blank, drop_cross_split_duplicates)
            require_train_and_val(table, used, csv_path, has_usage=from_usage)
            table["used"] = used
            all_images = np.memmap(raw_file.name, dtype=np.uint8, mode="r", shape=(len(table), data.IMAGE_SIDE, data.IMAGE_SIDE))
            table["index_in_split"] = -1
            for split in data.SPLITS:
                chosen = np.flatnonzero(((table["split"] == split) & used).to_numpy())
                table.loc[chosen, "index_in_split"] = np.arange(len(chosen))
                _write_split(all_images, chosen, partial[f"{split}_images"], partial[f"{split}_labels"], rows["labels"])
            del all_images
        table.to_parquet(partial["table"], index=False)
        summary = audit(table, used, csv_path, blank_std, splits_from=splits_from)
        partial["audit"].write_text(json.dumps(summary, indent=2) + "\n")
    log.info("%d rows parsed from %s; per split (rows, used): %s", len(table), csv_path, {split: (part["rows"], part["used"]) for split, part in summary["splits"].items()})
    return summary


def load_arrays(images_path, labels_path):
    """The images and labels of one split, loaded without pickle."""
    return np.load(images_path, allow_pickle=False), np.load(labels_path, allow_pickle=False)
