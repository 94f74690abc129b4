"""Joins results from several sides by signal id: pending buffer, duplicates, late arrivals, eviction, and
when a signal is missing: by progress (a side has moved past its input entry) or, without entry ids, by time.

Each worker commits its results in input order, so the input position of its latest result is its
progress ("frontier"). A pending signal is missing on a side only once that side's frontier has
passed the signal's input entry: exact, and never a matter of time passing. Ahead of it, it is awaiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator.arena import Arena, Ints, split_positions

# One side's result, already reduced to small ints by the state: (outcome, label, device, kind, error type);
# -1 means "none".
Slot = tuple[int, int, int, int, int]
# A pending join as the wire form and `Finished[i]` spell it: [first_seen_ms, mask of sides seen,
# input position, slot of side 0, slot of side 1, ...] (slot None = not yet; position -1 = unknown).
Entry = list[Any]

FIRST_SEEN, MASK, POSITION, SLOTS = 0, 1, 2, 3  # positions in an Entry
NO_POSITION = -1
_LOW = 0xFFFFFFFF


def input_position(entry_id: Any) -> int:
    """A stream entry id 'ms-seq' as one comparable int; NO_POSITION when there is none."""
    if type(entry_id) is not str:
        return NO_POSITION
    ms, _, seq = entry_id.partition("-")
    try:
        return (int(ms) << 32) + int(seq or 0)
    except ValueError:
        return NO_POSITION


@dataclass
class Finished:
    """Signals that left the buffer together, as columns: their masks, slots (n, sides, 5) and positions."""

    masks: Ints
    slots: npt.NDArray[np.int64]
    high: Ints
    low: Ints
    first_seen: npt.NDArray[np.float64]

    @classmethod
    def empty(cls, n_sides: int) -> Finished:
        ints = np.zeros(0, dtype=np.int64)
        return cls(ints, np.zeros((0, n_sides, 5), dtype=np.int64), ints, ints, np.zeros(0))

    def __len__(self) -> int:
        return int(self.masks.size)

    def __getitem__(self, at: int) -> Entry:
        mask = int(self.masks[at])
        slots = [tuple(self.slots[at, side].tolist()) if mask >> side & 1 else None
                 for side in range(self.slots.shape[1])]
        return [float(self.first_seen[at]), mask, (int(self.high[at]) << 32) + int(self.low[at]), *slots]

    def __iter__(self) -> Iterator[Entry]:
        return (self[at] for at in range(len(self)))


@dataclass
class Offered:
    """What one batch from one side did to the join."""

    accepted: Ints  # positions in the batch that were new results
    completed: Finished  # signals now seen on every side
    evicted: Finished  # oldest pending signals pushed out by max_pending
    duplicates: int = 0
    late: int = 0  # results for a signal that had already expired or been evicted


@dataclass
class _Batch:
    """One side's batch as the join reads it (columns of the same length)."""

    ids: list[str]
    slots: npt.NDArray[np.int64]
    high: Ints
    low: Ints
    late: list[int] = field(default_factory=list)


class JoinBuffer:
    """Pending joins in arrival order, plus a bounded memory of finished ids to recognise redeliveries.

    The memory is two generations of `max_pending` ids each: when the newer one fills up, the older
    one is dropped whole, so at least the last `max_pending` finished ids are always remembered.
    A batch is joined with a few dict calls made from C (map) and numpy on the pending rows' columns.
    """

    def __init__(self, n_sides: int, timeout_ms: float, max_pending: int) -> None:
        if n_sides < 2:
            raise ValueError("a join needs at least two sides")
        if max_pending <= 0 or timeout_ms <= 0:
            raise ValueError("timeout_ms and max_pending must be positive")
        self.n_sides = n_sides
        self.timeout_ms = float(timeout_ms)
        self.max_pending = max_pending
        self._full = (1 << n_sides) - 1
        self._rows = Arena(n_sides)  # pending signals' columns; row order is arrival order
        self._finished: dict[str, int] = {}  # id -> mask of the sides seen, newest generation
        self._finished_before: dict[str, int] = {}
        self.frontiers = [NO_POSITION] * n_sides  # each side's progress: the input position of its latest result

    def __len__(self) -> int:
        return len(self._rows)

    def offer(self, side: int, ids: Sequence[str], slots: Any, now_ms: float,
              positions: Sequence[int] | tuple[Ints, Ints] | None = None) -> Offered:
        """`slots`: (n, 5) ints; `positions`: input positions, or their (high, low) halves (see arena)."""
        ids = list(ids)
        n = len(ids)
        slot_array = np.asarray(slots, dtype=np.int64).reshape(n, 5)
        if isinstance(positions, tuple):
            high, low = positions
        else:
            high, low = split_positions(list(positions) if positions else [NO_POSITION] * n)
        if n:
            self._advance_frontier(side, high, low)
        if len(set(ids)) != n:  # a redelivery within the batch: its first copy must be seen first
            return self._offer_one_by_one(side, _Batch(ids, slot_array, high, low), now_ms)
        return self._offer(side, _Batch(ids, slot_array, high, low), now_ms)

    def _advance_frontier(self, side: int, high: Ints, low: Ints) -> None:
        top = int(high.max())
        latest = (top << 32) + int(low[high == top].max())
        self.frontiers[side] = max(self.frontiers[side], latest)

    def _offer_one_by_one(self, side: int, batch: _Batch, now_ms: float) -> Offered:
        parts = [self._offer(side, _Batch(batch.ids[i : i + 1], batch.slots[i : i + 1], batch.high[i : i + 1],
                                          batch.low[i : i + 1]), now_ms, evict=False) for i in range(len(batch.ids))]
        return Offered(np.concatenate([part.accepted + i for i, part in enumerate(parts)]).astype(np.int64),
                       _concat([part.completed for part in parts], self.n_sides), self._evict(),
                       sum(part.duplicates for part in parts), sum(part.late for part in parts))

    def _offer(self, side: int, batch: _Batch, now_ms: float, *, evict: bool = True) -> Offered:
        bit, arena, ids = 1 << side, self._rows, batch.ids
        rows = np.fromiter(map(arena.index.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))
        hit = rows >= 0
        masks = arena.masks[rows[hit]]
        fresh_hit = np.zeros(len(ids), dtype=bool)
        fresh_hit[hit] = masks & bit == 0
        duplicates = int(hit.sum() - fresh_hit.sum())
        # arrivals on a pending signal
        joined = rows[fresh_hit]
        arena.slots[joined, side] = batch.slots[fresh_hit]
        arena.masks[joined] |= bit
        done = joined[arena.masks[joined] == self._full]
        completed = self._take(done) if done.size else Finished.empty(self.n_sides)
        # the rest: a late partner of a finished signal, a redelivery of one, or a new pending signal
        missed = np.flatnonzero(~hit)
        new = self._sort_out(missed, ids, bit, batch)
        duplicates += missed.size - new.size - len(batch.late)
        if new.size:
            new_ids = ids if new.size == len(ids) else [ids[at] for at in new.tolist()]
            arena.append(new_ids, now_ms, bit, side, batch.slots[new], batch.high[new], batch.low[new])
        accepted = np.sort(np.concatenate([np.flatnonzero(fresh_hit), np.asarray(batch.late, dtype=np.int64),
                                           new]))
        evicted = self._evict() if evict else Finished.empty(self.n_sides)
        return Offered(accepted, completed, evicted, duplicates, len(batch.late))

    def _evict(self) -> Finished:
        """The oldest pending signals past max_pending leave the buffer."""
        excess = len(self._rows) - self.max_pending
        return self._take(self._rows.oldest(excess)) if excess > 0 else Finished.empty(self.n_sides)

    def _sort_out(self, missed: Ints, ids: list[str], bit: int, batch: _Batch) -> Ints:
        """Among ids not pending: positions of the new ones; late partners are remembered in batch.late."""
        if not missed.size:
            return missed
        missed_ids = ids if missed.size == len(ids) else [ids[at] for at in missed.tolist()]
        count = len(missed_ids)
        seen = np.fromiter(map(self._finished.get, missed_ids, repeat(0)), dtype=np.int64, count=count)
        if self._finished_before:  # the newer generation wins: it was written last
            before = np.fromiter(map(self._finished_before.get, missed_ids, repeat(0)), dtype=np.int64, count=count)
            seen = np.where(seen != 0, seen, before)
        finished = np.flatnonzero(seen)
        if not finished.size:
            return missed
        late = finished[seen[finished] & bit == 0]
        if late.size:
            self._remember([missed_ids[at] for at in late.tolist()], (seen[late] | bit).tolist())
            batch.late.extend(missed[late].tolist())
        return np.delete(missed, finished)

    def _take(self, rows: Ints) -> Finished:
        """Rows leave the buffer (in the order given); their ids are remembered as finished."""
        arena = self._rows
        out = Finished(arena.masks[rows], arena.slots[rows], arena.high[rows], arena.low[rows],
                       arena.first_seen[rows])
        ids = arena.remove(rows)
        self._remember(ids, out.masks.tolist())
        return out

    def settle(self) -> Finished:
        """Pending signals that every absent side has moved past: they will never complete; they leave
        the buffer. A signal without an input position is never settled here."""
        arena = self._rows
        rows = arena.live()
        if not rows.size:
            return Finished.empty(self.n_sides)
        high, low, masks = arena.high[rows], arena.low[rows], arena.masks[rows]
        settled = high >= 0  # has an input position
        for side, frontier in enumerate(self.frontiers):
            absent = masks >> side & 1 == 0
            top, bottom = frontier >> 32, frontier & _LOW
            passed = (top > high) | ((top == high) & (bottom > low))
            settled &= ~absent | passed
        rows = rows[settled]
        # grouped by the sides that have seen them (for two sides: by the side that saw them first), each
        # group in arrival order: the order in which the metrics' samples and series have always seen them
        return self._take(rows[np.argsort(arena.masks[rows], kind="stable")])

    def awaiting(self) -> list[int]:
        """Per side: pending signals it has not produced yet (a slower side's backlog as seen here)."""
        masks = self._rows.masks[self._rows.live()]
        return [int(np.count_nonzero(masks >> side & 1 == 0)) for side in range(self.n_sides)]

    def expire(self, now_ms: float, *, unordered_only: bool = False) -> Finished:
        """Pending signals first seen at least timeout_ms ago, oldest first; they leave the buffer.

        `unordered_only`: only those without an input position, which progress cannot settle."""
        arena = self._rows
        rows = arena.live()
        younger = np.flatnonzero(arena.first_seen[rows] > now_ms - self.timeout_ms)
        rows = rows[: younger[0]] if younger.size else rows  # arrival order: everything after is younger
        if unordered_only:
            rows = rows[arena.high[rows] < 0]
        return self._take(rows) if rows.size else Finished.empty(self.n_sides)

    def _remember(self, ids: list[str], masks: list[int]) -> None:
        at = 0
        while at < len(ids):
            room = self.max_pending - len(self._finished)
            self._finished.update(zip(ids[at : at + room], masks[at : at + room], strict=True))
            at += room
            if len(self._finished) >= self.max_pending:
                self._finished_before, self._finished = self._finished, {}

    def merge(self, other: JoinBuffer, recode_slot: Callable[[int, list[int]], list[int]]) -> None:
        """Take in another shard's pending signals (slots through `recode_slot(side, slot)`), in order of
        first arrival, and its memory of finished ids; each side's frontier is the furthest of the two."""
        mine, theirs = self.to_wire(), other.to_wire()
        recoded = [[*row[:4], *(None if slot is None else recode_slot(side, slot) for side, slot in enumerate(row[4:]))]
                   for row in theirs["pending"]]
        self.restore({
            "pending": sorted(mine["pending"] + recoded, key=lambda row: float(row[1])),
            "finished": {**mine["finished"], **theirs["finished"]},
            "finished_before": {**mine["finished_before"], **theirs["finished_before"]},
            "frontiers": [str(max(int(a), int(b)))
                          for a, b in zip(mine["frontiers"], theirs["frontiers"], strict=True)],
        })

    def to_wire(self) -> dict[str, Any]:
        return {
            # Positions exceed msgpack's 64-bit integers (ms << 32): they travel as decimal text.
            "pending": [[sid, entry[FIRST_SEEN], entry[MASK], str(entry[POSITION]), *entry[SLOTS:]]
                        for sid, entry in self._rows.entries()],
            "finished": self._finished,
            "finished_before": self._finished_before,
            "frontiers": [str(position) for position in self.frontiers],
        }

    def restore(self, raw: dict[str, Any]) -> None:
        rows = [list(row) for row in raw["pending"]]
        for row in rows:
            if len(row) == 3 + self.n_sides:  # saved before entries carried their input position
                row.insert(1 + POSITION, NO_POSITION)
        self._rows = Arena(self.n_sides)
        self._rows.restore(rows)
        self._finished = dict(raw["finished"])
        self._finished_before = dict(raw["finished_before"])
        self.frontiers = [int(v) for v in raw.get("frontiers", [NO_POSITION] * self.n_sides)]


def _concat(parts: list[Finished], n_sides: int) -> Finished:
    parts = [part for part in parts if len(part)] or [Finished.empty(n_sides)]
    return Finished(*(np.concatenate([getattr(part, name) for part in parts])
                      for name in ("masks", "slots", "high", "low", "first_seen")))

