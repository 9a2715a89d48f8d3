"""Compiled single-pass decoder of FER2013 CSV lines (Numba), the fast path of ``emotionnet.data``.

One loop over the bytes of a chunk splits lines and fields and decodes the label, the Usage and the
2,304 pixels of each row straight into preallocated arrays. It only accepts what the NumPy parser in
``emotionnet.data`` accepts; on the first thing it does not accept it stops and returns
``FAILED``, and the caller re-parses the chunk with the NumPy parser, which names the line and the
problem. Compiled code is cached on disk, so only the first run on a machine pays for compiling.
"""

from __future__ import annotations

import numba
import numpy as np

FAILED = -1
N_PIXELS = 2304
# The shortest valid row: one-digit pixels, one space apart, a one-digit label, a comma, a newline.
MIN_ROW_BYTES = 2 * N_PIXELS - 1 + 3
_NEWLINE, _CR, _COMMA, _QUOTE, _SPACE, _ZERO = 10, 13, 44, 34, 32, 48
_MAX_LABEL, _MAX_LABEL_DIGITS = 6, 8
# The Usage names in split-code order (Training=0, PublicTest=1, PrivateTest=2), zero-padded.
USAGE_NAMES = np.zeros((3, 11), dtype=np.uint8)
USAGE_LENGTHS = np.array([8, 10, 11], dtype=np.int64)
for _code, _name in enumerate((b"Training", b"PublicTest", b"PrivateTest")):
    USAGE_NAMES[_code, : len(_name)] = np.frombuffer(_name, np.uint8)


@numba.njit(nogil=True, cache=True)
def _label(raw, start, end):
    """The emotion label of raw[start:end], or FAILED."""
    if end - start == 0 or end - start > _MAX_LABEL_DIGITS:
        return FAILED
    value = 0
    for pos in range(start, end):
        digit = np.int64(raw[pos]) - _ZERO
        if digit < 0 or digit > 9:
            return FAILED
        value = value * 10 + digit
    return value if value <= _MAX_LABEL else FAILED


@numba.njit(nogil=True, cache=True)
def _usage(raw, start, end, names, lengths):
    """The split code of the Usage field raw[start:end], or FAILED."""
    for code in range(len(lengths)):
        if end - start != lengths[code]:
            continue
        same = True
        for offset in range(lengths[code]):
            if raw[start + offset] != names[code, offset]:
                same = False
                break
        if same:
            return code
    return FAILED


@numba.njit(nogil=True, cache=True)
def _is_digit(char):
    return char >= _ZERO and char <= _ZERO + 9


@numba.njit(nogil=True, cache=True)
def _line_end_at(raw, pos):
    """Whether raw[pos] ends a line: a newline, or a carriage return before one."""
    return raw[pos] == _NEWLINE or (raw[pos] == _CR and raw[pos + 1] == _NEWLINE)


@numba.njit(nogil=True, cache=True)
def _pixels(raw, pos, image):
    """Decode the pixel field starting at raw[pos] into ``image`` in one pass.

    Returns the position of the comma or line end after the field, or FAILED.
    """
    quoted = raw[pos] == _QUOTE
    pos += quoted
    count = 0
    while True:
        char = raw[pos]
        if char == _SPACE:
            pos += 1
        elif _is_digit(char):
            value = np.int64(char) - _ZERO
            pos += 1
            while _is_digit(raw[pos]):
                value = value * 10 + (np.int64(raw[pos]) - _ZERO)
                if value > 255:
                    return FAILED
                pos += 1
            if count == N_PIXELS:
                return FAILED
            image[count] = value
            count += 1
        else:
            break
    if quoted:
        if raw[pos] != _QUOTE:
            return FAILED
        pos += 1
    if count != N_PIXELS or not (raw[pos] == _COMMA or _line_end_at(raw, pos)):
        return FAILED
    return pos


@numba.njit(nogil=True, cache=True)
def _field_end(raw, pos):
    """The position of the comma or line end after the field starting at raw[pos]."""
    while raw[pos] != _COMMA and raw[pos] != _NEWLINE:
        pos += 1
    if raw[pos] == _NEWLINE and raw[pos - 1] == _CR:
        pos -= 1
    return pos


@numba.njit(nogil=True, cache=True)
def decode_lines(raw, layout, names, lengths, images, labels, split_codes, line_offsets):
    """Decode every non-blank line of ``raw`` (bytes ending in a newline).

    ``layout`` holds (number of columns, emotion column, pixels column, Usage column or -1). Row i
    goes to images[i] (flat, 2304), labels[i], split_codes[i], and line_offsets[i] (its line's index
    in the chunk); the arrays must have room for every valid row (see MIN_ROW_BYTES). Returns the number of rows, or FAILED at the first line the NumPy parser would
    reject (the caller then lets that parser word the error).
    """
    if len(layout) != 4 or images.shape[1] != N_PIXELS:
        return FAILED
    n_columns, emotion_column, pixels_column, usage_column = layout[0], layout[1], layout[2], layout[3]
    capacity = min(images.shape[0], len(labels), len(split_codes), len(line_offsets))
    size = len(raw)
    if size == 0:
        return 0
    if raw[size - 1] != _NEWLINE:
        return FAILED
    row, line, pos = 0, 0, 0
    while pos < size:
        if not _line_end_at(raw, pos):
            if row == capacity:
                return FAILED
            column = 0
            while True:
                if column >= n_columns:
                    return FAILED
                if column == pixels_column:
                    end = _pixels(raw, pos, images[row])
                    if end == FAILED:
                        return FAILED
                else:
                    end = _field_end(raw, pos)
                    start, stop = pos, end
                    if stop - start >= 2 and raw[start] == _QUOTE and raw[stop - 1] == _QUOTE:
                        start += 1
                        stop -= 1
                    if column == emotion_column:
                        label = _label(raw, start, stop)
                        if label == FAILED:
                            return FAILED
                        labels[row] = label
                    elif column == usage_column:
                        code = _usage(raw, start, stop, names, lengths)
                        if code == FAILED:
                            return FAILED
                        split_codes[row] = code
                column += 1
                pos = end
                if raw[end] != _COMMA:
                    break
                pos += 1
            if column != n_columns:
                return FAILED
            line_offsets[row] = line
            row += 1
        pos += 1 if raw[pos] == _NEWLINE else 2  # past the newline or the CR-newline at pos
        line += 1
    return row
