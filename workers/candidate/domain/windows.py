"""Sums of equal windows laid end to end, to the bit as `np.add.reduceat` makes them, but column by column
when there are many narrow windows (reduceat's cost is mostly a loop call per window)."""

from __future__ import annotations

import numpy as np

from workers.candidate.domain.model import Vector

PAIRWISE_BLOCK = 128  # numpy sums at most this many values with 8 accumulators; longer runs are halved
COLUMNS_FROM = 2048  # windows from which one numpy call per column beats reduceat's call per window
COLUMNS_UP_TO = 12  # the widest window summed by columns: wider ones take more calls than they save


def tiled_window_sums(flat: Vector, window: int) -> Vector:
    """np.add.reduceat(flat, np.arange(0, flat.size, window)), to the bit; flat.size is a multiple of window."""
    if window > COLUMNS_UP_TO or flat.size < COLUMNS_FROM * window:
        return np.add.reduceat(flat, np.arange(0, flat.size, window)) if flat.size else np.empty(0)
    return sums_by_columns(flat.reshape(-1, window))


def sums_by_columns(windows: Vector) -> Vector:
    """Each row's sum with reduceat's arithmetic: the row's first value plus numpy's pairwise sum of the
    others (what its float64 add loop does for a reduction), each addition done for all rows at once."""
    first = windows[:, 0]
    if windows.shape[1] == 1:
        return first.copy()
    total = _pairwise(windows, 1, windows.shape[1] - 1)
    return np.add(first, total, out=total)


def _pairwise(windows: Vector, start: int, count: int) -> Vector:
    """numpy's pairwise sum of columns start .. start + count - 1 (pairwise_sum in its loops_utils.h)."""
    columns = [windows[:, start + k] for k in range(count)]
    if count < 8:  # from -0.0 (which keeps a sum of -0.0s negative), one value after the other
        total = np.add(-0.0, columns[0])
        for column in columns[1:]:
            total += column
        return total
    if count <= PAIRWISE_BLOCK:  # 8 accumulators over whole blocks of 8, combined as a tree, then the rest
        whole = count - count % 8
        sums = columns[:8] if whole == 8 else [column.copy() for column in columns[:8]]
        for block in range(8, whole, 8):
            for k in range(8):
                sums[k] += columns[block + k]
        total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]))
        for column in columns[whole:]:
            total += column
        return total
    half = count // 2
    half -= half % 8
    return _pairwise(windows, start, half) + _pairwise(windows, start + half, count - half)
