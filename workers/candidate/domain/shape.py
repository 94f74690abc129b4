"""Shape profiles: the smoothed signal resampled to a fixed length, z-normalised, plus its log amplitude.

Two signals of the same shape at different scales get the same first part and differ only in the
last term, so a fault's waveform and its size weigh separately (`amplitude_weight`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.candidate.domain.model import Vector

AMPLITUDE_FLOOR = 1e-9  # a flat signal's std; keeps log finite (a flat signal is normal anyway)


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths laid end to end, so that one numpy call serves the whole batch."""

    flat: Vector
    lengths: npt.NDArray[np.intp]  # each row's length, >= 1

    @staticmethod
    def of(rows: Sequence[Vector]) -> Ragged:
        lengths = np.fromiter((row.shape[0] for row in rows), np.intp, len(rows))
        return Ragged(np.concatenate(rows) if rows else np.empty(0), lengths)

    @property
    def width(self) -> int:
        """The longest row's length (0 without rows)."""
        return int(self.lengths.max()) if self.lengths.size else 0

    def pad_into(self, out: Vector) -> None:
        """Writes each row into a row of `out` (rows x at least width), from its left; the rest is untouched."""
        if self.lengths.size and int(self.lengths.min()) == out.shape[1]:
            out[:] = self.flat.reshape(out.shape)
        else:
            out[np.arange(out.shape[1]) < self.lengths[:, None]] = self.flat

    def take(self, indices: Sequence[int]) -> Ragged:
        rows = self.rows()
        return Ragged.of([rows[i] for i in indices])

    @property
    def starts(self) -> npt.NDArray[np.intp]:
        return np.cumsum(self.lengths) - self.lengths

    def rows(self) -> list[Vector]:
        """Each row as a view of `flat` (plain slices: np.split costs several times more per row)."""
        flat, ends = self.flat, np.cumsum(self.lengths).tolist()
        return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]

    def means(self) -> Vector:
        return np.add.reduceat(self.flat, self.starts) / self.lengths

    def stds(self) -> Vector:
        centred = self.flat - np.repeat(self.means(), self.lengths)
        return np.sqrt(np.add.reduceat(centred * centred, self.starts) / self.lengths)

    def sorted_padded(self) -> Vector:
        """Each row sorted, padded on the right with +inf to the longest row's length."""
        width = int(self.lengths.max())
        padded = np.full((self.lengths.size, width), np.inf)
        padded[np.arange(width) < self.lengths[:, None]] = self.flat
        padded.sort(axis=1)
        return padded

    def sorted(self) -> Ragged:
        padded = self.sorted_padded()
        return Ragged(padded[np.isfinite(padded)], self.lengths)  # the flat rows are finite

    def medians(self) -> Vector:
        """np.median of each row, to the bit: the mean of its two middle values (or its middle one twice)."""
        padded = self.sorted_padded()
        index = np.arange(self.lengths.size)
        low, high = padded[index, (self.lengths - 1) // 2], padded[index, self.lengths // 2]
        return (low + high) / 2

    def resample(self, length: int) -> Vector:
        """Each row linearly interpolated at `length` evenly spaced points from its first to its last value,
        with the arithmetic of `resample` below."""
        span = (self.lengths - 1).astype(np.float64)
        positions = np.arange(length, dtype=np.float64)[None, :] * (span / (length - 1))[:, None]
        positions[:, -1] = span
        left = np.minimum(positions.astype(np.intp), np.maximum(self.lengths - 2, 0)[:, None])
        fraction = positions - left
        left += self.starts[:, None]
        right = np.minimum(left + 1, (self.starts + self.lengths - 1)[:, None])
        resampled: Vector = self.flat[left] * (1.0 - fraction) + self.flat[right] * fraction
        return resampled


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


def shape_profiles(
    rows: Sequence[Vector], length: int, amplitude_weight: float, quantiles: bool = False
) -> list[Vector]:
    """`shape_matrix`, row by row."""
    return list(shape_matrix(rows, length, amplitude_weight, quantiles))


def shape_matrix(rows: Sequence[Vector], length: int, amplitude_weight: float, quantiles: bool = False) -> Vector:
    """[z-normalised resampled row / sqrt(length), amplitude_weight * ln(std of the row)] per row (read-only);
    with `quantiles`, the row's sorted values resampled and z-normalised alike follow the waveform,
    and both parts are divided by sqrt(2).

    Dividing by sqrt(length) puts the distance between two shapes in [0, 2] whatever the length
    (it is sqrt(2 - 2 * their correlation)), so one similarity scale suits every `length`.
    """
    width = length * (2 if quantiles else 1)
    shapes = np.empty((len(rows), width + 1))
    if rows:
        ragged = Ragged.of(rows)
        parts = [ragged] if not quantiles else [ragged, ragged.sorted()]
        for offset, part in zip(range(0, width, length), parts, strict=True):
            resampled = part.resample(length)
            shapes[:, offset : offset + length] = (resampled - resampled.mean(axis=1, keepdims=True)) / (
                np.maximum(resampled.std(axis=1, keepdims=True), AMPLITUDE_FLOOR) * np.sqrt(length * len(parts))
            )
        shapes[:, width] = amplitude_weight * np.log(np.maximum(ragged.stds(), AMPLITUDE_FLOOR))
    shapes.flags.writeable = False
    return shapes
