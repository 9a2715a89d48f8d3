"""The straightforward per-row parser of the original notebooks, kept as the reference that the
vectorised parser is tested and benchmarked against."""

import numpy as np
import pandas as pd


def parse_reference(path):
    """Parse with pandas and one ``np.array(row.split(), dtype='float32')`` per row."""
    frame = pd.read_csv(path)
    pixels = [np.array(str(row).strip('"').split(), dtype="float32") for row in frame["pixels"]]
    images = np.stack(pixels).reshape(-1, 48, 48)
    return {"images": images.astype(np.uint8), "labels": frame["emotion"].to_numpy().astype(np.int8), "usage": frame.get("Usage")}
