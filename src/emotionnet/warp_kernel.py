"""Compiled affine warp of image batches (Numba) for ``emotionnet.augment``: bilinear sampling
with reflected borders, giving exactly the output of TensorFlow's ``ImageProjectiveTransformV3``
(``interpolation="BILINEAR"``, ``fill_mode="REFLECT"``) for affine transforms, the same float32
operations in the same order (tests/test_augment.py compares the two bit for bit).

TensorFlow's CPU kernel evaluates a generic per-pixel generator; for a training batch of 128
48x48 images it took about 6 ms of CPU time, this kernel 3.4 ms (bench/augment_cost.py). Compiled
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


@numba.njit(nogil=True, cache=True)
def warp_bilinear_reflect(images, transforms):
    """``images`` (batch, height, width) float32 warped by ``transforms`` (batch, 8) float32, one
    row [a0, a1, a2, b0, b1, b2, c0, c1] per image: output pixel (x, y) samples the input at
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k) with k = c0 x + c1 y + 1, or is 0 where k = 0.
    The sampling is TensorFlow's ``bilinear_interpolation`` in its order of operations, reading 0
    outside the image; it is written out here, as passing an image to a helper per pixel made the
    loop ten times slower."""
    batch, height, width = images.shape
    warped = np.empty_like(images)
    for index in range(batch):
        transform = transforms[index]
        affine = transform[6] == 0 and transform[7] == 0
        for row in range(height):
            output_y = np.float32(row)
            for column in range(width):
                output_x = np.float32(column)
                input_x = transform[0] * output_x + transform[1] * output_y + transform[2]
                input_y = transform[3] * output_x + transform[4] * output_y + transform[5]
                if not affine:  # for an affine transform the projection is exactly 1
                    projection = transform[6] * output_x + transform[7] * output_y + _ONE
                    if projection == 0:
                        warped[index, row, column] = _ZERO
                        continue
                    input_x, input_y = input_x / projection, input_y / projection
                x, y = _reflect(input_x, width), _reflect(input_y, height)
                top, left = np.int64(y), np.int64(x)  # x and y >= 0: truncating is flooring
                y_floor, x_floor = np.float32(top), np.float32(left)
                y_ceil, x_ceil = y_floor + _ONE, x_floor + _ONE
                bottom, right = top + 1, left + 1
                # after _reflect, top and left lie inside the image; bottom and right may lie one past it
                top_left = images[index, top, left]
                top_right = images[index, top, right] if right < width else _ZERO
                bottom_left = images[index, bottom, left] if bottom < height else _ZERO
                bottom_right = images[index, bottom, right] if bottom < height and right < width else _ZERO
                value_top = (x_ceil - x) * top_left + (x - x_floor) * top_right
                value_bottom = (x_ceil - x) * bottom_left + (x - x_floor) * bottom_right
                warped[index, row, column] = (y_ceil - y) * value_top + (y - y_floor) * value_bottom
    return warped
