"""Parse benchmark: the chunked parser (compiled kernel; and its NumPy-only path) against the per-row
reference of the original notebooks, on the same CSV in the same process run (alternating, medians),
plus memory and scaling.

    python bench/parse.py [--csv PATH] [--repeats 3] [--scale 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import DEFAULT_CSV, REPO, alternate, cpu_description, median, peak_rss_mb, plain_csv  # noqa: E402

from emotionnet import data, reference  # noqa: E402

STREAM_CODE = """
import sys
from emotionnet import data
rows = sum(len(chunk.labels) for chunk in data.iter_parsed_chunks(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
print('ROWS', rows)
"""
PARSE_CODE = """
import sys
from emotionnet import data
chunk_parser = data.parse_chunk_numpy if sys.argv[3] == "numpy" else data.parse_chunk
parsed = data.parse_csv(sys.argv[1], workers=int(sys.argv[2]), chunk_parser=chunk_parser)
"""
REFERENCE = "reference (pandas + per-row split)"
NUMPY_ONLY = "emotionnet NumPy-only, 2 threads"
REFERENCE_CODE = """
import sys
from emotionnet import reference
parsed = reference.parse_reference(sys.argv[1])
"""


def scaled_copy(source: Path, folder: Path, factor: int) -> Path:
    """The CSV's data rows repeated ``factor`` times under one header."""
    target = folder / f"x{factor}.csv"
    lines = source.read_bytes().split(b"\n", 1)
    body = lines[1] if lines[1].endswith(b"\n") else lines[1] + b"\n"
    with open(target, "wb") as sink:
        sink.write(lines[0] + b"\n")
        for _ in range(factor):
            sink.write(body)
    return target


def fresh_process_seconds(csv_path: Path, cache_dir: str | None = None) -> float:
    """Wall time of a new Python process that imports emotionnet and parses the CSV (2 threads).

    With ``cache_dir`` (an empty folder) Numba finds no compiled kernel and compiles it first.
    """
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if cache_dir:
        environment["NUMBA_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", PARSE_CODE, str(csv_path), "2", "compiled"], check=True, env=environment)
    return time.perf_counter() - start


def streaming_seconds(path: Path, chunk_bytes: int, workers: int) -> float:
    start = time.perf_counter()
    for _ in data.iter_parsed_chunks(path, chunk_bytes, workers):
        pass
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="FER2013-format CSV (.csv or .csv.gz)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10, help="size factor of the scaling test (0 to skip)")
    args = parser.parse_args()
    print(f"machine: {cpu_description()}")
    with tempfile.TemporaryDirectory() as folder:
        csv_path = plain_csv(args.csv, Path(folder))
        size_mb = csv_path.stat().st_size / 2**20
        parsed = data.parse_csv(csv_path)
        expected = reference.parse_reference(csv_path)
        assert np.array_equal(parsed.images, expected["images"]) and np.array_equal(parsed.labels, expected["labels"]), "parsers disagree"
        print(f"CSV: {args.csv} ({len(parsed.labels):,} rows, {size_mb:.0f} MB uncompressed); both parsers give identical arrays")

        contenders = {
            REFERENCE: lambda: reference.parse_reference(csv_path),
            NUMPY_ONLY: lambda: data.parse_csv(csv_path, workers=2, chunk_parser=data.parse_chunk_numpy),
            "emotionnet, 1 thread": lambda: data.parse_csv(csv_path, workers=1),
            "emotionnet, 2 threads": lambda: data.parse_csv(csv_path, workers=2),
        }
        times = alternate(contenders, args.repeats)
        memory = {
            REFERENCE: peak_rss_mb(REFERENCE_CODE, csv_path),
            NUMPY_ONLY: peak_rss_mb(PARSE_CODE, csv_path, 2, "numpy"),
            "emotionnet, 1 thread": peak_rss_mb(PARSE_CODE, csv_path, 1, "compiled"),
            "emotionnet, 2 threads": peak_rss_mb(PARSE_CODE, csv_path, 2, "compiled"),
        }
        reference_time = median(times[REFERENCE])
        print(f"\n{'parser':<36}{'median s':>10}{'speed-up':>10}{'peak RSS MB':>13}{'RSS/CSV':>9}")
        for name, values in times.items():
            print(f"{name:<36}{median(values):>10.2f}{reference_time / median(values):>9.1f}x{memory[name]:>13.0f}{memory[name] / size_mb:>9.2f}")

        warm = fresh_process_seconds(csv_path)
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = fresh_process_seconds(csv_path, cache_dir)
        print(f"a new process (Python start, imports, parse with 2 threads): {warm:.2f} s; "
              f"{cold:.2f} s the first time on a machine, when the kernel is compiled (then cached)")

        if args.scale:
            print(f"\nscaling: streaming parse (chunks of 16 MB, 2 threads) of the CSV and of {args.scale}x its rows")
            big = scaled_copy(csv_path, Path(folder), args.scale)
            small_time = streaming_seconds(csv_path, data.DEFAULT_CHUNK_BYTES, 2)
            big_time = streaming_seconds(big, data.DEFAULT_CHUNK_BYTES, 2)
            print(f"{'file':<12}{'MB':>8}{'seconds':>10}{'peak RSS MB':>13}")
            for label, path, seconds in (("1x", csv_path, small_time), (f"{args.scale}x", big, big_time)):
                rss = peak_rss_mb(STREAM_CODE, path, data.DEFAULT_CHUNK_BYTES, 2)
                print(f"{label:<12}{path.stat().st_size / 2**20:>8.0f}{seconds:>10.2f}{rss:>13.0f}")
            print(f"time ratio {args.scale}x/1x: {big_time / small_time:.1f} (linear = {args.scale})")
            print("peak RSS of the streaming parse by chunk size (1x file):")
            for chunk_mb in (4, 16, 64):
                print(f"  chunk {chunk_mb:>3} MB: {peak_rss_mb(STREAM_CODE, csv_path, chunk_mb * 2**20, 2):.0f} MB")

    best = min(median(values) for name, values in times.items() if name.startswith("emotionnet,"))
    print(f"\nSUMMARY parse: {best:.2f} s for {size_mb:.0f} MB, {reference_time / best:.1f}x faster than the per-row reference ({reference_time:.1f} s)")


if __name__ == "__main__":
    main()
