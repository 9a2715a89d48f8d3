"""Compiled random erasing (Numba) for ``emotionnet.augment.erase``: fills each chosen image's
rectangle with the uniform noise TensorFlow's ``StatelessRandomUniformV2`` would draw for the whole
batch, computing only the values inside the rectangles (tests/test_augment.py compares the two bit
for bit).

TensorFlow's stateless uniform numbers come from Philox4x32-10: element ``i`` of a draw is the
``i % 4``-th 32-bit word of Philox applied to (counter + ``i // 4``, key), its 23 low bits made into
a float in [1, 2) minus 1. Erasing with noise drawn for every pixel took 2.7 ms of CPU time per
batch of 128 images, for the few percent of pixels it replaces; with this kernel 1.2 ms
(bench/augment_cost.py). Compiled code is cached on disk, as for the warp.
"""

from __future__ import annotations

import numba
import numpy as np

_MULTIPLIER_A, _MULTIPLIER_B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_KEY_STEP_A, _KEY_STEP_B = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LOW_WORD, _WORD_BITS = np.uint64(0xFFFFFFFF), np.uint64(32)
_ROUNDS = 10
_TWO_TO_MINUS_23 = np.float32(2.0**-23)


@numba.njit(nogil=True, cache=True)
def philox_words(key, counter, group):
    """The four 32-bit words of Philox4x32-10 for ``counter`` + ``group`` (a 128-bit counter as two
    uint64, low first) and ``key`` (one uint64): what TensorFlow's ``PhiloxRandom`` gives after
    skipping ``group`` blocks."""
    low = counter[0] + np.uint64(group)
    high = counter[1] + np.uint64(1) if low < counter[0] else counter[1]
    word_0, word_1 = np.uint32(low & _LOW_WORD), np.uint32(low >> _WORD_BITS)
    word_2, word_3 = np.uint32(high & _LOW_WORD), np.uint32(high >> _WORD_BITS)
    key_a, key_b = np.uint32(key[0] & _LOW_WORD), np.uint32(key[0] >> _WORD_BITS)
    for round_index in range(_ROUNDS):
        product_a = _MULTIPLIER_A * np.uint64(word_0)
        product_b = _MULTIPLIER_B * np.uint64(word_2)
        high_a, low_a = np.uint32(product_a >> _WORD_BITS), np.uint32(product_a & _LOW_WORD)
        high_b, low_b = np.uint32(product_b >> _WORD_BITS), np.uint32(product_b & _LOW_WORD)
        # (Numba widens uint32 arithmetic to 64 bits: each word is cut back to 32)
        word_0, word_1, word_2, word_3 = np.uint32(high_b ^ word_1 ^ key_a), low_b, np.uint32(high_a ^ word_3 ^ key_b), low_a
        if round_index < _ROUNDS - 1:
            key_a, key_b = np.uint32(key_a + _KEY_STEP_A), np.uint32(key_b + _KEY_STEP_B)
    return word_0, word_1, word_2, word_3


@numba.njit(nogil=True, cache=True)
def uniform_float(word):
    """TensorFlow's ``Uint32ToFloat``: a float32 in [1, 2) from the 23 low bits of ``word``, minus
    1; computed as those bits times 2^-23, which is exactly that difference."""
    return np.float32(word & np.uint32(0x7FFFFF)) * _TWO_TO_MINUS_23


@numba.njit(nogil=True, cache=True)
def erase_rectangles(images, heights, widths, tops, lefts, chosen, key, counter):
    """``images`` (batch, height, width, 1) float32 with, in each ``chosen`` image, the pixels at rows
    r and columns c with top <= r < top + height and left <= c < left + width (float32, as
    TensorFlow compares them) replaced by element (image, r, c) of the uniform [0, 1) draw of
    ``images``' shape for ``key`` and ``counter`` (TensorFlow's StatelessRandomGetKeyCounter)."""
    batch, rows, columns = images.shape[0], images.shape[1], images.shape[2]
    erased = images.copy()
    for index in range(batch):
        if not chosen[index]:
            continue
        bottom, right = tops[index] + heights[index], lefts[index] + widths[index]
        for row in range(rows):
            if not (np.float32(row) >= tops[index] and np.float32(row) < bottom):
                continue
            for column in range(columns):
                if np.float32(column) >= lefts[index] and np.float32(column) < right:
                    element = (index * rows + row) * columns + column
                    words = philox_words(key, counter, element // 4)
                    erased[index, row, column, 0] = uniform_float(words[element % 4])
    return erased
