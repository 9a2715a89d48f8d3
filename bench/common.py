"""Shared helpers of the benchmark scripts: the default CSV, timing, and machine facts."""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"


def plain_csv(path: Path, folder: Path) -> Path:
    """``path`` itself, or an uncompressed copy in ``folder`` if it is gzipped."""
    path = Path(path)
    if path.suffix != ".gz":
        return path
    target = folder / path.with_suffix("").name
    with gzip.open(path, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 2**24)
    return target


def alternate(contenders: dict, repeats: int) -> dict:
    """Run the contenders (name -> callable) round-robin ``repeats`` times; name -> list of seconds."""
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def training_images(csv, count: int):
    """``count`` Training rows of ``csv`` drawn at random (the same ones every run, in file order):
    (uint8 images, int64 labels). Not the first ``count``: the dev CSV is sorted by label, and its
    first 3,995 Training rows are all Angry."""
    import numpy as np

    from emotionnet import data

    parsed = data.parse_csv(csv, workers=2)
    training_rows = np.flatnonzero(parsed.split_codes == 0)
    rows = np.sort(np.random.default_rng(0).choice(training_rows, min(count, len(training_rows)), replace=False))
    return parsed.images[rows], parsed.labels[rows].astype(np.int64)


def median(values):
    return statistics.median(values)


def peak_rss_mb(code: str, *args) -> float:
    """Peak resident memory (MB) of a fresh Python process running ``code`` (sys.argv[1:] = args)."""
    # VmHWM is this process's own high-water mark; ru_maxrss would also count the (large) parent's
    # memory, which Linux carries over into a child across fork + exec
    wrapper = code + "\nprint('PEAK_KB', next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))"
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", wrapper, *map(str, args)], capture_output=True, text=True, env=environment, check=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith("PEAK_KB"))
    return int(line.split()[1]) / 1024


def cpu_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, Python {platform.python_version()}"
