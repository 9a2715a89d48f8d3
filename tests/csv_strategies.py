"""Hypothesis strategies for FER2013 CSVs: valid ones, then randomly damaged."""

import numpy as np
from hypothesis import strategies as st

from conftest import csv_text


@st.composite
def mutated_csv(draw):
    """A valid FER2013 CSV of 2-5 rows (at least one Training and one PublicTest row), then 0-3
    random mutations of its bytes."""
    rows = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (rows, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, rows)
    usage = rng.permutation(["Training", "PublicTest", *rng.choice(["Training", "PublicTest", "PrivateTest"], rows - 2)])
    content = bytearray(csv_text(images, labels, usage, newline=draw(st.sampled_from(["\n", "\r\n"]))).encode())
    mutations = draw(st.lists(st.sampled_from(["truncate", "delete", "duplicate_field", "drop_field", "corrupt", "delimiter", "quote", "nan", "huge", "non_utf8", "negative", "extra_space", "control", "quoted_field"]), max_size=3))
    for mutation in mutations:
        position = draw(st.integers(0, max(len(content) - 1, 0)))
        if mutation == "truncate":
            del content[position:]
        elif mutation == "delete":
            del content[position : position + draw(st.integers(1, 200))]
        elif mutation == "duplicate_field":
            content[position:position] = b",Training"
        elif mutation == "drop_field":
            line_end = content.find(b"\n", position)
            comma = content.rfind(b",", 0, line_end if line_end >= 0 else len(content))
            if comma >= 0:
                del content[comma:line_end if line_end >= 0 else len(content)]
        elif mutation == "corrupt":
            content[position : position + 1] = bytes([draw(st.integers(0, 255))])
        elif mutation == "delimiter":  # in the header, or in the rows after it
            start = draw(st.sampled_from([0, content.find(b"\n") + 1]))
            content[start:] = content[start:].replace(b",", draw(st.sampled_from([b";", b"\t", b"|"])), draw(st.integers(1, 3)))
        elif mutation == "quote":
            content[position:position] = b'"'
        elif mutation == "quoted_field":  # an opening quote right after a comma, closed or not
            comma = content.find(b",", position)
            if comma >= 0:
                content[comma + 1 : comma + 1] = b'"'
        elif mutation == "control":  # a tab, a lone carriage return or a vertical tab among the pixels
            content[position:position] = draw(st.sampled_from([b"\t", b"\r", b"\x0b"]))
        else:
            inserted = {"nan": b" NaN", "huge": b" 99999999999999999999999", "non_utf8": b"\xff\xfe\x80", "negative": b" -3", "extra_space": b"  "}[mutation]
            content[position:position] = inserted
    return bytes(content), mutations
