"""The vectorised CSV parser against a straightforward per-row reference, and every bad input."""

import bz2
import gzip
import io
import lzma
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import csv_text
from csv_strategies import mutated_csv
import emotionnet
from emotionnet import data, parse_kernel
from emotionnet.reference import parse_reference


def _each_parser(path):
    """The whole-file parse, and the body parsed by the compiled kernel and by the NumPy parser
    alone (parse_csv falls back to NumPy silently, so the kernel must be checked on its own)."""
    header, _, body = path.read_bytes().partition(b"\n")
    layout = data.read_layout(path, header)
    compiled = data.decode_chunk(body, 2, layout)
    assert compiled is not None, "the compiled kernel refused the chunk"
    return {"parse_csv": data.parse_csv(path), "compiled": compiled, "numpy": data.parse_chunk_numpy(body, 2, layout, path)}


def _assert_same_parse(first, second):
    for field in ("images", "labels", "split_codes", "line_numbers"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))


def test_matches_reference_on_random_rows(small_dataset, write_csv):
    images, labels, usage = small_dataset
    path = write_csv(csv_text(images, labels, usage))
    reference = parse_reference(path)
    parsers = _each_parser(path)
    for parsed in parsers.values():
        np.testing.assert_array_equal(parsed.images, reference["images"])
        np.testing.assert_array_equal(parsed.labels, reference["labels"])
    parsed = parsers["parse_csv"]
    np.testing.assert_array_equal(parsed.images, images)
    assert parsed.images.dtype == np.uint8 and parsed.labels.dtype == np.int8
    assert parsed.line_numbers.tolist() == list(range(2, 62))
    names = np.array(list(data.USAGE_TO_SPLIT))
    assert (names[parsed.split_codes] == usage).all()


def edge_case_csv(images, labels, usage) -> str:
    """Leading zeros (up to 6 digits), extra and trailing spaces, quoted fields, CRLF line endings
    and a BOM."""
    lines = ["\ufeffemotion,pixels,Usage"]
    for index, image in enumerate(images):
        width = (0, 3, 4, 6)[index % 4] if index % 3 == 0 else 0
        tokens = [f"{value:0{width}d}" for value in image.ravel()]
        separator = "  " if index % 4 == 1 else " "
        pixels = separator.join(tokens)
        if index % 5 == 2:
            pixels = f" {pixels}  "
        if index % 2:
            pixels = f'"{pixels}"'
        lines.append(f"{labels[index]},{pixels},{usage[index]}")
    return "\r\n".join(lines) + "\r\n"


def test_edge_case_formatting_matches_reference(small_dataset, write_csv):
    """The edge cases of ``edge_case_csv``, for the compiled kernel and for the NumPy parser."""
    images, labels, usage = small_dataset
    path = write_csv(edge_case_csv(images[:20], labels[:20], usage[:20]))
    reference = parse_reference(path)
    names = np.array(list(data.USAGE_TO_SPLIT))
    for parsed in _each_parser(path).values():
        np.testing.assert_array_equal(parsed.images, images[:20])
        np.testing.assert_array_equal(parsed.images, reference["images"])
        np.testing.assert_array_equal(parsed.labels, reference["labels"])
        assert (names[parsed.split_codes] == usage[:20]).all()
        assert parsed.line_numbers.tolist() == list(range(2, 22))


@pytest.fixture(scope="module")
def edge_case_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(24, 48, 48), dtype=np.uint8)
    usage = rng.choice(list(data.USAGE_TO_SPLIT), size=24)
    text = edge_case_csv(images, rng.integers(0, 7, size=24), usage)
    path = tmp_path_factory.mktemp("chunks") / "edge.csv"
    path.write_text(text.replace("\r\n", "\r\n\r\n", 3))  # and a few blank lines
    return path, data.parse_csv(path, chunk_bytes=2**30)


@settings(max_examples=60, deadline=None)
@given(chunk_bytes=st.integers(1, 400_000), workers=st.integers(1, 3))
def test_any_chunk_size_gives_identical_arrays(edge_case_file, chunk_bytes, workers):
    path, whole = edge_case_file
    _assert_same_parse(data.parse_csv(path, chunk_bytes=chunk_bytes, workers=workers), whole)


@pytest.mark.parametrize("chunk_bytes", [1, 5000, 7001, 2**16, 2**24])
def test_chunk_size_does_not_change_result(small_dataset, write_csv, chunk_bytes):
    images, labels, usage = small_dataset
    path = write_csv(csv_text(images, labels, usage))
    parsed = data.parse_csv(path, chunk_bytes=chunk_bytes, workers=2)
    np.testing.assert_array_equal(parsed.images, images)
    np.testing.assert_array_equal(parsed.labels, labels)
    assert parsed.line_numbers.tolist() == list(range(2, 62))
    _assert_same_parse(parsed, data.parse_csv(path))


def test_gzip_and_blank_lines(small_dataset, tmp_path):
    images, labels, usage = small_dataset
    text = csv_text(images[:5], labels[:5], usage[:5]).replace("\n", "\n\n", 2)
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    parsed = data.parse_csv(path)
    np.testing.assert_array_equal(parsed.images, images[:5])
    assert parsed.line_numbers.tolist() == [3, 5, 6, 7, 8]


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "not_gzip"])
def test_broken_gzip_is_a_csv_format_error_naming_the_file(small_dataset, tmp_path, damage):
    images, labels, usage = small_dataset
    packed = gzip.compress(csv_text(images, labels, usage).encode())
    broken = {"truncated": packed[: len(packed) // 2], "corrupted": packed[:40] + bytes(200) + packed[240:], "not_gzip": b"emotion,pixels"}[damage]
    path = tmp_path / "data.csv.gz"
    path.write_bytes(broken)
    with pytest.raises(data.CsvFormatError, match=r"data\.csv\.gz: line \d+: corrupt or truncated gzip data at or after this line") as failure:
        data.parse_csv(path, chunk_bytes=4096)
    assert 1 <= failure.value.line <= 61  # header + 60 rows


def test_no_usage_column_and_other_column_order(small_dataset, write_csv):
    images, labels, _ = small_dataset
    lines = ["pixels,emotion"] + [f"{' '.join(map(str, image.ravel()))},{label}" for image, label in zip(images, labels)]
    parsed = data.parse_csv(write_csv("\n".join(lines)))  # no final newline either
    np.testing.assert_array_equal(parsed.images, images)
    np.testing.assert_array_equal(parsed.labels, labels)
    assert (parsed.split_codes == data.NO_USAGE).all()


def _one_row_csv(pixels="1 " * 2303 + "1", label="3", usage="Training"):
    good = f"0,{'5 ' * 2303}5,Training\n"
    return "emotion,pixels,Usage\n" + good + f"{label},{pixels},{usage}\n"


BAD_INPUTS = [
    ("", 1, "empty file"),
    ("emotion,pixels,Usage\n", None, "no data rows"),
    ("emotion,Usage\n3,Training\n", 1, "missing column(s) pixels"),
    ("feeling,pixels,Usage\n", 1, "missing column(s) emotion"),
    ("emotion,pixels,Usage,usage\n", 1, "column(s) Usage appear more than once"),
    (f"0,{'5 ' * 2303}5,Training\n", 1, "the first line is a data row, not a header: add the header line 'emotion,pixels,Usage'"),
    (_one_row_csv(pixels="1 " * 2302 + "1"), 3, "expected 2304 pixel values, found 2303"),
    (_one_row_csv(pixels="1 " * 2304 + "1"), 3, "expected 2304 pixel values, found 2305"),
    (_one_row_csv(pixels="1 " * 2303 + "1.5"), 3, "pixel field holds '.'"),
    (_one_row_csv(pixels="1 " * 2303 + "x"), 3, "pixel field holds 'x'"),
    (_one_row_csv(pixels="-1 " + "1 " * 2302 + "1"), 3, "pixel field holds '-'"),
    (_one_row_csv(pixels="1\t" + "1 " * 2302 + "1"), 3, "pixel field holds '\\t'"),   # pixels are separated by spaces only
    (_one_row_csv(pixels='"' + "1 " * 2303 + "1"), 3, "pixel field holds '\"'"),   # a quote that is never closed
    ("emotion,pixels\n" + f"3,{'1 ' * 2303}1\rX\n", 2, "pixel field holds '\\r'"),   # a lone carriage return does not end a line
    (_one_row_csv(pixels="256 " + "1 " * 2302 + "1"), 3, "pixel value 256 is out of range"),
    (_one_row_csv(pixels="1000 " + "1 " * 2302 + "1"), 3, "more than three significant digits"),
    (_one_row_csv(label="7"), 3, "emotion label '7' is not an integer 0-6"),
    (_one_row_csv(label="-1"), 3, "emotion label '-1'"),
    (_one_row_csv(label=""), 3, "emotion label ''"),
    (_one_row_csv(usage="Validation"), 3, "unknown Usage 'Validation'"),
    ("emotion,pixels,Usage\n0,1 2 3\n", 2, "expected 3 comma-separated fields, found 2"),
    ("emotion,pixels,Usage\n0,1,2,Training\n", 2, "expected 3 comma-separated fields, found 4"),
]


def test_column_names_match_whatever_their_case(write_csv):
    rows = f"3,{'7 ' * 2303}7,PublicTest\n"
    public_test = [list(data.USAGE_TO_SPLIT).index("PublicTest")]
    for header in [' "Emotion" ,PIXELS,usage', "emotion,pixels,\ufeffUsage", "emotion\u200b,\u200bpixels,Usage", "0,emotion,pixels,Usage"]:
        parsed = data.parse_csv(write_csv(f"{header}\n" + ("x," if header.startswith("0") else "") + rows))
        assert parsed.labels.tolist() == [3] and parsed.images[0, 0, 0] == 7
        assert parsed.split_codes.tolist() == public_test, header   # the Usage column was read


@pytest.mark.parametrize(("wrap", "advice"), [
    (gzip.compress, "the file is gzip-compressed: give it a .gz suffix"),
    (lambda content: _zipped(content), "the file is a zip archive: unzip it"),
    (bz2.compress, "the file is bzip2-compressed: decompress it first"),
    (lzma.compress, "the file is xz-compressed: decompress it first"),
])
def test_a_compressed_file_named_csv_says_how_to_read_it(write_csv, wrap, advice):
    path = write_csv(wrap(f"emotion,pixels,Usage\n3,{'7 ' * 2303}7,Training\n".encode()))
    with pytest.raises(data.CsvFormatError, match=f"{path}: line 1: not a text CSV: {advice}"):
        data.parse_csv(path)


def _zipped(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fer2013.csv", content)
    return buffer.getvalue()


def test_a_missing_header_gives_a_short_message(write_csv):
    path = write_csv(f"0,{'5 ' * 2303}5,Training\n" * 2)
    with pytest.raises(data.CsvFormatError) as raised:
        data.parse_csv(path)
    assert len(str(raised.value)) < len(str(path)) + 200   # not the whole row of pixels


@pytest.mark.parametrize(("content", "line", "problem"), BAD_INPUTS)
def test_bad_input_names_file_line_and_problem(write_csv, content, line, problem):
    path = write_csv(content)
    with pytest.raises(data.CsvFormatError) as raised:
        data.parse_csv(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert problem in message
    assert raised.value.line == line
    if line is not None:
        assert f"line {line}:" in message


def test_bad_line_number_is_exact_in_later_chunks(small_dataset, write_csv):
    images, labels, usage = small_dataset
    text = csv_text(images, labels, usage).splitlines()
    text[41] = text[41].replace(",Training", ",Train").replace(",PublicTest", ",Train").replace(",PrivateTest", ",Train")
    path = write_csv("\n".join(text) + "\n")
    with pytest.raises(data.CsvFormatError, match="line 42: unknown Usage 'Train'"):
        data.parse_csv(path, chunk_bytes=20000, workers=2)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        data.parse_csv(tmp_path / "nowhere.csv")


def test_content_hashes_find_equal_images(rng):
    images = rng.integers(0, 256, size=(50, 48, 48), dtype=np.uint8)
    images[10] = images[3]
    hashes = data.content_hashes(images)
    assert hashes[10] == hashes[3]
    assert len(set(hashes.tolist())) == 49
    pd.testing.assert_series_equal(pd.Series(data.content_hashes(images[:20])), pd.Series(hashes[:20]))


def _numpy_result(body, layout, path):
    try:
        return data.parse_chunk_numpy(body, 2, layout, path)
    except data.CsvFormatError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_csv())
def test_compiled_parser_accepts_exactly_what_the_numpy_parser_accepts(case):
    """The compiled fast path and the NumPy parser (which words the errors) agree on damaged CSVs.
    Cases whose header is damaged never reach the parsers: ``assume`` discards them, and Hypothesis
    fails the test if it has to discard most cases."""
    content, _ = case
    header, _, body = content.partition(b"\n")
    try:
        layout = data.read_layout("fuzz.csv", header)
    except data.CsvFormatError:
        layout = None
    assume(layout is not None)
    body = body if body.endswith(b"\n") or not body else body + b"\n"
    compiled = data.decode_chunk(body, 2, layout)
    reference = _numpy_result(body, layout, "fuzz.csv")
    assert (compiled is None) == (reference is None)
    if compiled is not None:
        for field in ("images", "labels", "split_codes", "line_numbers"):
            np.testing.assert_array_equal(getattr(compiled, field), getattr(reference, field))
            assert getattr(compiled, field).dtype == getattr(reference, field).dtype


@pytest.mark.parametrize(("content", "line", "problem"), [case for case in BAD_INPUTS if case[1] not in (None, 1)])
def test_compiled_parser_rejects_every_bad_row(content, line, problem):
    assert data.compiled_kernel() is not None  # else decode_chunk returns None for everything
    header, _, body = content.encode().partition(b"\n")
    assert data.decode_chunk(body, 2, data.read_layout("bad.csv", header)) is None


def test_compiled_parser_knows_the_usage_names():
    names = [bytes(row[:length]).decode() for row, length in zip(parse_kernel.USAGE_NAMES, parse_kernel.USAGE_LENGTHS)]
    assert names == list(data.USAGE_TO_SPLIT)


def test_compiled_parser_leaves_unusual_layouts_to_the_numpy_parser():
    row = b"3," + b" ".join([b"7"] * 2304) + b",x\n"
    assert data.decode_chunk(row.replace(b",x", b",Training"), 2, data.CsvLayout(3, 0, 1, 2)) is not None
    for layout in (data.CsvLayout(3, 0, -1, None), data.CsvLayout(2, 1, 1, None), data.CsvLayout(3, 0, 1, 5)):
        assert data.decode_chunk(row, 2, layout) is None


def test_a_chunk_without_its_final_newline_parses_like_one_with_it():
    row = b"3," + b" ".join([b"7"] * 2304) + b",Training"
    layout = data.CsvLayout(3, 0, 1, 2)
    without, with_newline = data.parse_chunk(row, 2, layout, "x.csv"), data.parse_chunk(row + b"\n", 2, layout, "x.csv")
    np.testing.assert_array_equal(without.images, with_newline.images)
    assert without.labels.tolist() == [3] and without.line_numbers.tolist() == [2]


def test_without_the_compiled_kernel_the_numpy_parser_does_the_work(small_dataset, write_csv, monkeypatch):
    images, labels, usage = small_dataset
    path = write_csv(csv_text(images, labels, usage))
    data.compiled_kernel.cache_clear()
    monkeypatch.setitem(sys.modules, "emotionnet.parse_kernel", None)  # makes the import fail
    monkeypatch.delattr(emotionnet, "parse_kernel", raising=False)
    try:
        parsed = data.parse_csv(path)
        assert data.compiled_kernel() is None
    finally:
        data.compiled_kernel.cache_clear()
    np.testing.assert_array_equal(parsed.images, images)
    np.testing.assert_array_equal(parsed.labels, labels)


def _parse_one_bad_row(write_csv, label="3", usage="Training"):
    return data.parse_csv(write_csv(_one_row_csv(label=label, usage=usage)))


def test_leading_zero_labels_parse_up_to_eight_digits_and_longer_ones_are_refused(write_csv):
    assert _parse_one_bad_row(write_csv, label="00000003").labels.tolist() == [0, 3]
    body = _one_row_csv(label="00000003").encode().partition(b"\n")[2]
    assert data.decode_chunk(body, 2, data.CsvLayout(3, 0, 1, 2)).labels.tolist() == [0, 3]   # the compiled kernel too, not only its fallback
    with pytest.raises(data.CsvFormatError, match=r"line 3: emotion label '000000003' is not an integer 0-6"):
        _parse_one_bad_row(write_csv, label="000000003")


@pytest.mark.parametrize("usage", ["PublicTests", "Training2", "PrivateTestX"])
def test_a_usage_that_only_starts_with_a_known_name_is_refused(write_csv, usage):
    with pytest.raises(data.CsvFormatError, match=f"line 3: unknown Usage '{usage}'"):
        _parse_one_bad_row(write_csv, usage=usage)


def test_publictest_is_validation_and_privatetest_is_test():
    assert data.USAGE_TO_SPLIT == {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def test_content_hashes_tell_an_image_from_its_upside_down_copy(rng):
    images = rng.integers(0, 256, size=(20, 48, 48), dtype=np.uint8)
    flipped = images[:, ::-1, :]  # the same rows in another order
    assert (data.content_hashes(images) != data.content_hashes(flipped)).all()
    swapped = images.copy()
    swapped[:, :24], swapped[:, 24:] = images[:, 24:], images[:, :24]
    assert (data.content_hashes(images) != data.content_hashes(swapped)).all()


def test_truncated_gzip_names_a_late_line_when_the_damage_is_late(small_dataset, tmp_path):
    images, labels, usage = small_dataset
    packed = gzip.compress(csv_text(images, labels, usage).encode())
    path = tmp_path / "data.csv.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])  # about 45 of the 60 rows still readable
    with pytest.raises(data.CsvFormatError, match="corrupt or truncated gzip data") as failure:
        data.parse_csv(path, chunk_bytes=4096)
    assert 30 < failure.value.line <= 61


def test_atomic_outputs_failure_removes_partial_files_and_writes_no_final(tmp_path):
    final = {"a": tmp_path / "a.npy", "b": tmp_path / "b.json"}
    with pytest.raises(RuntimeError):
        with data.atomic_outputs(final) as partial:
            partial["a"].write_bytes(b"x")
            partial["b"].write_text("{}")
            raise RuntimeError("late failure")
    assert list(tmp_path.iterdir()) == []
