"""Compiled affine warp of image batches (Numba) for ``emotionnet.augment``: bilinear sampling
with reflected borders, giving exactly the output of TensorFlow's ``ImageProjectiveTransformV3``
(``interpolation="BILINEAR"``, ``fill_mode="REFLECT"``) for affine transforms, the same float32
operations in the same order (tests/test_augment.py compares the two bit for bit).

TensorFlow's CPU kernel evaluates a generic per-pixel generator; for a training batch of 128
48x48 images it took about 6.6 ms of CPU time, this kernel 3.1 ms (bench/augment_cost.py). Compiled
code is cached on disk, so only the first run on a machine pays for compiling.
"""

from __future__ import annotations

import numba
import numpy as np

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@numba.njit(nogil=True, cache=True, inline="always")
def _reflect(coordinate, length):
    """TensorFlow's ``MapCoordinate<FILL_REFLECT>``: reflect ``coordinate`` into [0, length - 1]
    ([abcd] -> [dcba|abcd|dcba]), then clamp; float32 throughout, as there."""
    doubled = 2 * length
    if coordinate < 0:
        if length <= 1:
            coordinate = _ZERO
        else:
            if coordinate < np.float32(doubled):
                coordinate = np.float32(doubled * np.int64(-coordinate / np.float32(doubled))) + coordinate
            coordinate = coordinate + np.float32(doubled) if coordinate < np.float32(-length) else -coordinate - _ONE
    elif coordinate > np.float32(length - 1):
        if length <= 1:
            coordinate = _ZERO
        else:
            coordinate -= np.float32(doubled * np.int64(coordinate / np.float32(doubled)))
            if coordinate >= np.float32(length):
                coordinate = np.float32(doubled) - coordinate - _ONE
    return min(max(coordinate, _ZERO), np.float32(length - 1))


@numba.njit(nogil=True, cache=True, inline="always")
def _bilinear(image, x, y, height, width):
    """TensorFlow's ``bilinear_interpolation`` of ``image`` (height, width) at (``x``, ``y``), both
    reflected into the image, in its order of operations, reading 0 outside the image."""
    top, left = np.int64(y), np.int64(x)  # x and y >= 0: truncating is flooring
    y_floor, x_floor = np.float32(top), np.float32(left)
    y_ceil, x_ceil = y_floor + _ONE, x_floor + _ONE
    bottom, right = top + 1, left + 1
    # top and left lie inside the image; bottom and right may lie one past it
    top_left = image[top, left]
    top_right = image[top, right] if right < width else _ZERO
    bottom_left = image[bottom, left] if bottom < height else _ZERO
    bottom_right = image[bottom, right] if bottom < height and right < width else _ZERO
    value_top = (x_ceil - x) * top_left + (x - x_floor) * top_right
    value_bottom = (x_ceil - x) * bottom_left + (x - x_floor) * bottom_right
    return (y_ceil - y) * value_top + (y - y_floor) * value_bottom


@numba.njit(nogil=True, cache=True)
def warp_bilinear_reflect(images, transforms):
    """``images`` (batch, height, width, 1) float32 warped by ``transforms`` (batch, 8) float32,
    one row [a0, a1, a2, b0, b1, b2, c0, c1] per image: output pixel (x, y) samples the input at
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k) with k = c0 x + c1 y + 1, or is 0 where k = 0.
    The products a0 x and b0 x are computed once per column and a1 y and b1 y once per row (the
    same float32 values, added in the same order); a coordinate inside the image is left as it is,
    which reflecting and clamping it would also do."""
    batch, height, width = images.shape[0], images.shape[1], images.shape[2]
    warped = np.empty_like(images)
    column_x, column_y = np.empty(width, np.float32), np.empty(width, np.float32)
    last_x, last_y = np.float32(width - 1), np.float32(height - 1)
    for index in range(batch):
        image, output = images[index, :, :, 0], warped[index, :, :, 0]
        a0, a1, a2, b0, b1, b2, c0, c1 = transforms[index]
        affine = c0 == 0 and c1 == 0  # then the projection k is exactly 1
        for column in range(width):
            column_x[column], column_y[column] = a0 * np.float32(column), b0 * np.float32(column)
        for row in range(height):
            output_y = np.float32(row)
            row_x, row_y = a1 * output_y, b1 * output_y
            for column in range(width):
                input_x = column_x[column] + row_x + a2
                input_y = column_y[column] + row_y + b2
                if not affine:
                    projection = c0 * np.float32(column) + c1 * output_y + _ONE
                    if projection == 0:
                        output[row, column] = _ZERO
                        continue
                    input_x, input_y = input_x / projection, input_y / projection
                if not (input_x >= _ZERO and input_x <= last_x):
                    input_x = _reflect(input_x, width)
                if not (input_y >= _ZERO and input_y <= last_y):
                    input_y = _reflect(input_y, height)
                output[row, column] = _bilinear(image, input_x, input_y, height, width)
    return warped
