"""The join's pending signals as numpy columns, rows in arrival order, with an id -> row index."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]

_LOW = 0xFFFFFFFF
_HIGHEST = (1 << 63) - 1
_MIN_CAPACITY = 1_024


def split_positions(positions: Sequence[int]) -> tuple[Ints, Ints]:
    """Input positions (ms << 32 + seq, beyond int64) as two int64 halves that order the same way.
    A position past any real entry id's time (ms beyond int64) is taken as none (-1)."""
    positions = [position if position >> 32 <= _HIGHEST else -1 for position in positions]
    return (np.array([position >> 32 for position in positions], dtype=np.int64),
            np.array([position & _LOW for position in positions], dtype=np.int64))


class Arena:
    """Rows are appended in arrival order and die when their signal leaves the join; the dead are
    compacted away when the arrays fill up, so a row costs no Python object of its own."""

    def __init__(self, n_sides: int) -> None:
        self.n_sides = n_sides
        self.index: dict[str, int] = {}  # pending id -> row
        self._start = 0  # rows before it are all dead
        self._end = 0  # the next row to fill
        self._allocate(_MIN_CAPACITY)

    def _allocate(self, capacity: int) -> None:
        self.ids = np.empty(capacity, dtype=object)
        self.first_seen = np.zeros(capacity, dtype=np.float64)
        self.masks = np.zeros(capacity, dtype=np.int64)
        self.high = np.zeros(capacity, dtype=np.int64)
        self.low = np.zeros(capacity, dtype=np.int64)
        self.slots = np.full((capacity, self.n_sides, 5), -1, dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=bool)

    def __len__(self) -> int:
        return len(self.index)

    def live(self) -> Ints:
        """The pending rows, in arrival order."""
        rows = np.flatnonzero(self.alive[self._start : self._end]) + self._start
        self._start = int(rows[0]) if rows.size else self._end
        return rows

    def oldest(self, count: int) -> Ints:
        return self.live()[:count]

    def append(self, ids: list[str], now_ms: float, mask: int, side: int, slots: npt.NDArray[np.int64],
               high: Ints, low: Ints) -> None:
        count = len(ids)
        self._make_room(count)
        rows = slice(self._end, self._end + count)
        self.ids[rows] = ids
        self.first_seen[rows] = now_ms
        self.masks[rows] = mask
        self.high[rows], self.low[rows] = high, low
        self.slots[rows] = -1
        self.slots[rows, side] = slots
        self.alive[rows] = True
        self.index.update(zip(ids, range(self._end, self._end + count), strict=True))
        self._end += count

    def remove(self, rows: Ints) -> list[str]:
        """Rows leave; returns their ids."""
        ids: list[str] = self.ids[rows].tolist()
        deque(map(self.index.__delitem__, ids), maxlen=0)  # the deletions, from C
        self.alive[rows] = False
        if not self.index:
            self._start = self._end = 0
        return ids

    def _make_room(self, count: int) -> None:
        capacity = self.masks.size
        if self._end + count <= capacity:
            return
        live = self.live()
        needed = live.size + count
        columns = [self.ids[live], self.first_seen[live], self.masks[live], self.high[live], self.low[live],
                   self.slots[live]]
        if 2 * needed > capacity:
            self._allocate(max(2 * needed, _MIN_CAPACITY))
        else:
            self.alive[:] = False
        for array, values in zip((self.ids, self.first_seen, self.masks, self.high, self.low, self.slots),
                                 columns, strict=True):
            array[: live.size] = values
        self.alive[: live.size] = True
        self.alive[live.size :] = False
        self._start, self._end = 0, int(live.size)
        self.index = dict(zip(columns[0].tolist(), range(live.size), strict=True))

    def entries(self) -> Iterator[tuple[str, list[Any]]]:
        """(id, [first_seen, mask, position, slot or None per side]) in arrival order."""
        for row in self.live().tolist():
            mask = int(self.masks[row])
            slots = [self.slots[row, side].tolist() if mask >> side & 1 else None for side in range(self.n_sides)]
            position = (int(self.high[row]) << 32) + int(self.low[row])
            yield str(self.ids[row]), [float(self.first_seen[row]), mask, position, *slots]

    def restore(self, rows: list[list[Any]]) -> None:
        """Rows of the wire form: [id, first_seen, mask, position (text), slot or None per side]."""
        count = len(rows)
        self._allocate(max(2 * count, _MIN_CAPACITY))
        high, low = split_positions([int(row[3]) for row in rows])
        for at, row in enumerate(rows):
            self.ids[at], self.first_seen[at], self.masks[at] = row[0], row[1], row[2]
            for side, slot in enumerate(row[4:]):
                if slot is not None:
                    self.slots[at, side] = slot
        self.high[:count], self.low[:count] = high, low
        self.alive[:count] = True
        self._start, self._end = 0, count
        self.index = {row[0]: at for at, row in enumerate(rows)}
