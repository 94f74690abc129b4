"""Shape profiles: the smoothed signal resampled to a fixed length, z-normalised, plus its log amplitude.

Two signals of the same shape at different scales get the same first part and differ only in the
last term, so a fault's waveform and its size weigh separately (`amplitude_weight`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.candidate.domain.model import Vector

AMPLITUDE_FLOOR = 1e-9  # a flat signal's std; keeps log finite (a flat signal is normal anyway)


def resample(rows: Vector, length: int) -> Vector:
    """Each row linearly interpolated at `length` evenly spaced points from its first to its last sample."""
    width = rows.shape[1]
    if width == 1:
        return np.repeat(rows, length, axis=1)
    positions = np.linspace(0.0, width - 1, length)
    left = np.minimum(positions.astype(np.intp), width - 2)
    fraction = positions - left
    resampled: Vector = rows[:, left] * (1.0 - fraction) + rows[:, left + 1] * fraction
    return resampled


def shape_profiles(rows: Sequence[Vector], length: int, amplitude_weight: float) -> list[Vector]:
    """[z-normalised resampled row / sqrt(length), amplitude_weight * ln(std of the row)] per row.

    Dividing by sqrt(length) puts the distance between two shapes in [0, 2] whatever the length
    (it is sqrt(2 - 2 * their correlation)), so one similarity scale suits every `length`.
    """
    by_length: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_length.setdefault(row.shape[0], []).append(index)
    result: list[Vector] = [None] * len(rows)  # type: ignore[list-item]  # filled per length below
    for indices in by_length.values():
        matrix = np.stack([rows[i] for i in indices])
        std = np.maximum(matrix.std(axis=1, keepdims=True), AMPLITUDE_FLOOR)
        resampled = resample(matrix, length)
        shapes = np.empty((len(indices), length + 1))
        shapes[:, :length] = (resampled - resampled.mean(axis=1, keepdims=True)) / (
            np.maximum(resampled.std(axis=1, keepdims=True), AMPLITUDE_FLOOR) * np.sqrt(length)
        )
        shapes[:, length] = amplitude_weight * np.log(std[:, 0])
        shapes.flags.writeable = False
        for i, row in zip(indices, shapes, strict=True):
            result[i] = row
    return result
