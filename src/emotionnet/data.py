"""FER2013-format CSV parsing: raw bytes to uint8 images, int8 labels and a per-image table.

The parser works on chunks of whole lines, so the memory it needs is bounded by the chunk size, not
by the file size. Each chunk is decoded by a compiled single-pass kernel (``parse_kernel``); a chunk
the kernel does not accept is re-parsed by the vectorised NumPy parser below, which defines what is
valid and reports every malformed line as ``CsvFormatError("<file>: line <n>: <problem>")``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
SPLITS = ("train", "val", "test")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_SIDE = 48
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
NO_USAGE = -1  # split code of rows from a CSV without a Usage column

_NEWLINE, _CR, _COMMA, _QUOTE, _SPACE, _ZERO = 10, 13, 44, 34, 32, 48
_BOM = b"\xef\xbb\xbf"
log = logging.getLogger(__name__)
DEFAULT_CHUNK_BYTES = 16 * 2**20


class CsvFormatError(ValueError):
    """A FER2013 CSV that cannot be parsed; the message names the file, the line and the problem."""

    def __init__(self, path, line, problem):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{path}: {where}{problem}")


@dataclass
class ParsedChunk:
    """The rows of one chunk: images (n, 48, 48) uint8, labels int8, split codes, source lines."""

    images: np.ndarray
    labels: np.ndarray
    split_codes: np.ndarray
    line_numbers: np.ndarray


@dataclass(frozen=True)
class CsvLayout:
    """Where the needed columns sit in the header."""

    n_columns: int
    emotion: int
    pixels: int
    usage: int | None


def open_binary(path):
    """Open a CSV or gzip-compressed CSV for binary reading."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


_COMPRESSED = {b"\x1f\x8b": "gzip-compressed: give it a .gz suffix (e.g. fer2013.csv.gz)", b"PK\x03\x04": "a zip archive: unzip it and use the CSV inside", b"BZh": "bzip2-compressed: decompress it first", b"\xfd7zXZ": "xz-compressed: decompress it first"}
COLUMNS = ("emotion", "pixels", "Usage")
_INVISIBLE = " \t\ufeff\u200b"   # stripped from column names (a BOM mid-header is left by concatenated files)


def _shown(names, limit: int = 60) -> str:
    """A header's column names for a message, each cut to ``limit`` characters."""
    return "[" + ", ".join(repr(name if len(name) <= limit else name[:limit] + "...") for name in names) + "]"


def read_layout(path, header: bytes) -> CsvLayout:
    """Find the emotion, pixels and (optional) Usage columns in a header line. Column names match
    case-insensitively (``Emotion`` is ``emotion``); a known column named twice is an error."""
    text = header.removeprefix(_BOM).rstrip(b"\r\n")
    if not text.strip():
        raise CsvFormatError(path, 1, "empty file: expected the header 'emotion,pixels,Usage'")
    for magic, advice in _COMPRESSED.items():
        if text.startswith(magic):
            raise CsvFormatError(path, 1, f"not a text CSV: the file is {advice}")
    try:
        names = [name.strip(_INVISIBLE).strip('"').strip(_INVISIBLE) for name in text.decode("utf-8").split(",")]
    except UnicodeDecodeError:
        raise CsvFormatError(path, 1, "header is not UTF-8 text") from None
    positions = {column: [index for index, name in enumerate(names) if name.lower() == column.lower()] for column in COLUMNS}
    repeated = [column for column, found in positions.items() if len(found) > 1]
    if repeated:
        raise CsvFormatError(path, 1, f"column(s) {', '.join(repeated)} appear more than once; header is {_shown(names)}")
    missing = [column for column in ("emotion", "pixels") if not positions[column]]
    if missing and names[0].isascii() and names[0].isdigit():
        raise CsvFormatError(path, 1, f"the first line is a data row, not a header: add the header line 'emotion,pixels,Usage' (or 'emotion,pixels') above it; its first fields are {_shown(names[:2], 20)}")
    if missing:
        raise CsvFormatError(path, 1, f"missing column(s) {', '.join(missing)}; header is {_shown(names)}")
    usage = positions["Usage"][0] if positions["Usage"] else None
    return CsvLayout(len(names), positions["emotion"][0], positions["pixels"][0], usage)


def _unpacked(path, line, read):
    """``read()``, with a corrupt or truncated gzip stream reported as CsvFormatError (the damage
    is at or after ``line``, the first line not yet read whole)."""
    try:
        return read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CsvFormatError(path, line, f"corrupt or truncated gzip data at or after this line ({error})") from None


def iter_line_chunks(stream, first_line: int, chunk_bytes: int, path=None):
    """Yield (bytearray ending in a newline, number of its first line) for successive whole-line chunks.
    A corrupt or truncated gzip stream raises CsvFormatError naming ``path`` and the first line not
    yet read whole.

    Each chunk is read straight into its own buffer (no copy of the chunk), so workers can hold
    several chunks at once.
    """
    carry = b""
    line = first_line
    while True:
        block = bytearray(len(carry) + chunk_bytes)
        block[: len(carry)] = carry
        filled = len(carry) + _unpacked(path, line, lambda: _read_into(stream, memoryview(block)[len(carry) :]))
        if filled == len(carry):
            break
        cut = block.rfind(b"\n", 0, filled) + 1
        carry = bytes(block[cut:filled])
        if cut == 0:
            continue
        del block[cut:]
        yield block, line
        line += block.count(b"\n")
    if carry:
        yield bytearray(carry + b"\n"), line


def _read_into(stream, view) -> int:
    """Fill ``view`` from ``stream`` (which may return short reads); the number of bytes read."""
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _field_bounds(raw, path, first_line, layout):
    """Start/end offsets of every field of every non-blank line, and the lines' numbers."""
    newlines = np.flatnonzero(raw == _NEWLINE)
    line_starts = np.concatenate(([0], newlines[:-1] + 1))
    line_ends = newlines.copy()
    has_cr = (line_ends > line_starts) & (raw[np.maximum(line_ends - 1, 0)] == _CR)
    line_ends[has_cr] -= 1
    commas = np.flatnonzero(raw == _COMMA)
    commas_per_line = np.bincount(np.searchsorted(newlines, commas), minlength=len(newlines))
    blank = line_ends == line_starts
    wrong = ~blank & (commas_per_line != layout.n_columns - 1)
    if wrong.any():
        first = np.flatnonzero(wrong)[0]
        raise CsvFormatError(
            path,
            first_line + first,
            f"expected {layout.n_columns} comma-separated fields, found {commas_per_line[first] + 1}",
        )
    kept = ~blank
    line_numbers = first_line + np.flatnonzero(kept)
    commas = commas.reshape(-1, layout.n_columns - 1)
    starts = np.column_stack([line_starts[kept], commas + 1])
    ends = np.column_stack([commas, line_ends[kept]])
    quoted = (ends - starts >= 2) & (raw[starts] == _QUOTE) & (raw[np.maximum(ends - 1, 0)] == _QUOTE)
    return starts + quoted, ends - quoted, line_numbers


def _field_text(raw, start, end, width):
    """Fixed-width byte matrix (n, width) of short fields, with a mask of the valid characters."""
    offsets = np.arange(width)
    valid = offsets < (end - start)[:, None]
    chars = raw[np.minimum(start[:, None] + offsets, len(raw) - 1)]
    return np.where(valid, chars, 0), valid


def _parse_labels(raw, start, end, line_numbers, path):
    lengths = end - start
    width = max(int(lengths.max()), 1)
    chars, valid = _field_text(raw, start, end, min(width, 8))
    digits = chars.astype(np.int64) - _ZERO
    is_digit = (digits >= 0) & (digits <= 9)
    bad = (lengths == 0) | (lengths > 8) | (valid & ~is_digit).any(axis=1)
    weights = 10 ** np.clip(lengths[:, None] - 1 - np.arange(chars.shape[1]), 0, None)
    values = np.where(valid & is_digit, digits * weights, 0).sum(axis=1)
    bad |= values > len(EMOTIONS) - 1
    if bad.any():
        row = np.flatnonzero(bad)[0]
        text = bytes(raw[start[row] : end[row]]).decode("utf-8", "replace")
        raise CsvFormatError(path, int(line_numbers[row]), f"emotion label {text!r} is not an integer 0-6")
    return values.astype(np.int8)


def _parse_usage(raw, start, end, line_numbers, path):
    width = max(len(name) for name in USAGE_TO_SPLIT) + 1
    chars, _ = _field_text(raw, start, end, width)
    lengths = end - start
    codes = np.full(len(start), -2, dtype=np.int8)
    for code, name in enumerate(USAGE_TO_SPLIT):
        pattern = np.frombuffer(name.encode(), np.uint8)
        match = (lengths == len(pattern)) & (chars[:, : len(pattern)] == pattern).all(axis=1)
        codes[match] = code
    if (codes == -2).any():
        row = np.flatnonzero(codes == -2)[0]
        text = bytes(raw[start[row] : end[row]]).decode("utf-8", "replace")
        known = ", ".join(USAGE_TO_SPLIT)
        raise CsvFormatError(path, int(line_numbers[row]), f"unknown Usage {text!r} (expected one of {known})")
    return codes


def _line_of(offset, ends, line_numbers):
    return int(line_numbers[np.searchsorted(ends, offset, side="right")])


def _parse_pixels(raw, start, end, line_numbers, path):
    """Decode the space-separated pixel fields of all rows into a (n, 2304) uint8 array."""
    marks = np.zeros(len(raw) + 1, dtype=np.int8)
    marks[start] += 1
    marks[end] -= 1
    inside = np.cumsum(marks[:-1], dtype=np.int8).view(bool)
    digit_values = raw - np.uint8(_ZERO)
    is_digit = (digit_values < 10) & inside
    bad_char = inside & ~is_digit & (raw != _SPACE)
    if bad_char.any():
        offset = int(np.flatnonzero(bad_char)[0])
        char = bytes(raw[offset : offset + 1]).decode("latin-1")
        raise CsvFormatError(path, _line_of(offset, end, line_numbers), f"pixel field holds {char!r}: pixels must be integers 0-255 separated by spaces")
    token_end = is_digit.copy()
    token_end[:-1] &= ~is_digit[1:]
    ends = np.flatnonzero(token_end)
    counts = np.searchsorted(ends, end) - np.searchsorted(ends, start)
    if (counts != N_PIXELS).any():
        row = np.flatnonzero(counts != N_PIXELS)[0]
        raise CsvFormatError(path, int(line_numbers[row]), f"expected {N_PIXELS} pixel values, found {counts[row]}")
    values = digit_values[ends].astype(np.uint16)
    tens = is_digit[ends - 1]
    values += tens * digit_values[ends - 1].astype(np.uint16) * 10
    hundreds = tens & is_digit[ends - 2]
    values += hundreds * digit_values[ends - 2].astype(np.uint16) * 100
    _check_long_tokens(raw, is_digit, ends, hundreds, values, end, line_numbers, path)
    if values.max(initial=0) > 255:
        token = int(np.flatnonzero(values > 255)[0])
        raise CsvFormatError(path, _line_of(int(ends[token]), end, line_numbers), f"pixel value {values[token]} is out of range 0-255")
    return values.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def _check_long_tokens(raw, is_digit, ends, longer, values, field_ends, line_numbers, path):
    """Tokens of more than three digits are valid only with leading zeros ('0042')."""
    back = 3
    while longer.any():
        longer = longer & is_digit[ends - back]
        nonzero = longer & (raw[ends - back] != _ZERO)
        if nonzero.any():
            token = int(np.flatnonzero(nonzero)[0])
            raise CsvFormatError(path, _line_of(int(ends[token]), field_ends, line_numbers), "pixel value has more than three significant digits (out of range 0-255)")
        back += 1


def parse_chunk(data: bytes, first_line: int, layout: CsvLayout, path) -> ParsedChunk:
    """Parse whole CSV lines whose first line has number ``first_line`` (a last line may lack its newline)."""
    if data and not data.endswith(b"\n"):
        data = bytes(data) + b"\n"
    parsed = decode_chunk(data, first_line, layout)
    return parsed if parsed is not None else parse_chunk_numpy(data, first_line, layout, path)


@functools.cache
def compiled_kernel():
    """The ``parse_kernel`` module, imported on first use (keeps ``import emotionnet.data`` light),
    or None where Numba cannot load or cache it; the NumPy parser then does all the work."""
    try:
        from emotionnet import parse_kernel
    except (ImportError, RuntimeError) as error:
        log.warning("compiled CSV parser unavailable (%s); using the slower NumPy parser", error)
        return None
    return parse_kernel


def decode_chunk(data: bytes, first_line: int, layout: CsvLayout) -> ParsedChunk | None:
    """The compiled parser's result, or None if it did not accept the chunk (see parse_chunk_numpy)."""
    parse_kernel = compiled_kernel()
    if parse_kernel is None:
        return None
    used_columns = [layout.emotion, layout.pixels] + ([] if layout.usage is None else [layout.usage])
    if len(set(used_columns)) != len(used_columns) or not all(0 <= column < layout.n_columns for column in used_columns):
        return None  # only layouts from read_layout are decoded by the kernel
    raw = np.frombuffer(data, dtype=np.uint8)
    capacity = len(data) // parse_kernel.MIN_ROW_BYTES + 1
    images = np.empty((capacity, N_PIXELS), dtype=np.uint8)
    labels = np.empty(capacity, dtype=np.int8)
    split_codes = np.full(capacity, NO_USAGE, dtype=np.int8)
    line_offsets = np.empty(capacity, dtype=np.int64)
    layout_codes = np.array([layout.n_columns, layout.emotion, layout.pixels, -1 if layout.usage is None else layout.usage], dtype=np.int64)
    rows = parse_kernel.decode_lines(raw, layout_codes, parse_kernel.USAGE_NAMES, parse_kernel.USAGE_LENGTHS, images, labels, split_codes, line_offsets)
    if rows == parse_kernel.FAILED:
        return None
    return ParsedChunk(images[:rows].reshape(-1, IMAGE_SIDE, IMAGE_SIDE), labels[:rows], split_codes[:rows], first_line + line_offsets[:rows])


def parse_chunk_numpy(data: bytes, first_line: int, layout: CsvLayout, path) -> ParsedChunk:
    """The vectorised NumPy parser: the definition of a valid chunk, and the source of error messages."""
    raw = np.frombuffer(data, dtype=np.uint8)
    starts, ends, line_numbers = _field_bounds(raw, path, first_line, layout)
    if len(line_numbers) == 0:
        return ParsedChunk(np.empty((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8), np.empty(0, np.int8), np.empty(0, np.int8), np.empty(0, np.int64))
    labels = _parse_labels(raw, starts[:, layout.emotion], ends[:, layout.emotion], line_numbers, path)
    if layout.usage is None:
        split_codes = np.full(len(labels), NO_USAGE, dtype=np.int8)
    else:
        split_codes = _parse_usage(raw, starts[:, layout.usage], ends[:, layout.usage], line_numbers, path)
    images = _parse_pixels(raw, starts[:, layout.pixels], ends[:, layout.pixels], line_numbers, path)
    return ParsedChunk(images, labels, split_codes, line_numbers)


def iter_parsed_chunks(path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int = 1, chunk_parser=None):
    """Parse a FER2013 CSV chunk by chunk, ``workers`` chunks at a time, yielding ParsedChunk in order.

    ``chunk_parser`` (default ``parse_chunk``) lets benchmarks run ``parse_chunk_numpy`` alone.
    """
    chunk_parser = chunk_parser or parse_chunk
    with open_binary(path) as stream:
        header = _unpacked(path, 1, stream.readline)
        layout = read_layout(path, header)
        chunks = iter_line_chunks(stream, 2, chunk_bytes, path)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            pending = collections.deque()
            for data, first_line in chunks:
                pending.append(pool.submit(chunk_parser, data, first_line, layout, path))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def parse_csv(path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int = 1, chunk_parser=None) -> ParsedChunk:
    """Parse a whole FER2013 CSV into memory. Raises CsvFormatError for malformed input."""
    parts = list(iter_parsed_chunks(path, chunk_bytes, workers, chunk_parser))
    if not parts or sum(len(part.labels) for part in parts) == 0:
        raise CsvFormatError(path, None, "no data rows (the file holds only a header)")
    return ParsedChunk(*(np.concatenate([getattr(part, field) for part in parts]) for field in ("images", "labels", "split_codes", "line_numbers")))


def content_hashes(images: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each image's pixels (vectorised), as uint64; equal images hash equal."""
    words = np.ascontiguousarray(images).reshape(len(images), -1).view(np.uint64)
    mixed = words ^ (words >> np.uint64(29))
    multipliers = np.random.default_rng(20131).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        hashed = (mixed * multipliers).sum(axis=1, dtype=np.uint64)
        return hashed ^ (hashed >> np.uint64(31))


def atomic_path(path) -> Path:
    """A temporary sibling of ``path``; ``os.replace`` it onto ``path`` once fully written."""
    path = Path(path)
    return path.with_name(f".partial-{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_outputs(paths: dict):
    """Yield ``atomic_path`` of each of ``paths`` (a dict of final paths) to write into; when the
    block succeeds, rename them onto their final paths in the dict's order, else delete them, so
    that a failure leaves no output and no temporary file."""
    final = {key: Path(path) for key, path in paths.items()}
    partial = {key: atomic_path(path) for key, path in final.items()}
    try:
        yield partial
        for key, path in partial.items():
            os.replace(path, final[key])
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
