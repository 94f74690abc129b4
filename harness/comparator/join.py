"""Joins results from several sides by signal id: pending buffer, duplicates, late arrivals, eviction, and
when a signal is missing: by progress (a side has moved past its input entry) or, without entry ids, by time.

Each worker commits its results in input order, so the input position of its latest result is its
progress ("frontier"). A pending signal is missing on a side only once that side's frontier has
passed the signal's input entry: exact, and never a matter of time passing. Ahead of it, it is awaiting.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# One side's result, already reduced to small ints by the state: (outcome, label, device, kind, error type);
# -1 means "none".
Slot = tuple[int, int, int, int, int]
# A pending join: [first_seen_ms, mask of sides seen, input position, slot of side 0, slot of side 1, ...]
# (slot None = not yet; input position -1 = unknown, e.g. a tapped production channel).
Entry = list[Any]

FIRST_SEEN, MASK, POSITION, SLOTS = 0, 1, 2, 3  # positions in an Entry
NO_POSITION = -1


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
class Offered:
    """What one batch from one side did to the join."""

    accepted: list[int] = field(default_factory=list)  # positions in the batch that were new results
    completed: list[Entry] = field(default_factory=list)  # signals now seen on every side
    evicted: list[Entry] = field(default_factory=list)  # oldest pending signals pushed out by max_pending
    duplicates: int = 0
    late: int = 0  # results for a signal that had already expired or been evicted


class JoinBuffer:
    """Pending joins in arrival order, plus a bounded memory of finished ids to recognise redeliveries.

    The memory is two generations of `max_pending` ids each: when the newer one fills up, the older
    one is dropped whole, so at least the last `max_pending` finished ids are always remembered.
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
        self._pending: OrderedDict[str, Entry] = OrderedDict()
        self._finished: dict[str, int] = {}  # id -> mask of the sides seen, newest generation
        self._finished_before: dict[str, int] = {}
        self.frontiers = [NO_POSITION] * n_sides  # each side's progress: the input position of its latest result
        # Pending signals by the side that saw them first: each queue is in input order, because each
        # side's results are; so settling pops from the left and never scans the whole buffer.
        self._by_opener: list[deque[tuple[int, str]]] = [deque() for _ in range(n_sides)]

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, side: int, ids: Sequence[str], slots: Sequence[Slot], now_ms: float,
              positions: Sequence[int] | None = None) -> Offered:
        out = Offered()
        if positions:
            self.frontiers[side] = max(self.frontiers[side], max(positions))
        opened = self._by_opener[side]
        pending = self._pending  # not the finished dicts: _remember may swap their generations mid-batch
        bit, slot_at, full = 1 << side, SLOTS + side, self._full
        template: Entry = [0.0, 0, NO_POSITION, *([None] * self.n_sides)]
        accepted, completed = out.accepted, out.completed
        for position, sid in enumerate(ids):
            entry = pending.get(sid)
            if entry is not None:
                mask = entry[MASK]
                if mask & bit:
                    out.duplicates += 1
                    continue
                entry[slot_at] = slots[position]
                entry[MASK] = mask = mask | bit
                accepted.append(position)
                if mask == full:
                    del pending[sid]
                    completed.append(entry)
                    # _remember, inlined: this is the path every matched signal takes
                    self._finished[sid] = full
                    if len(self._finished) >= self.max_pending:
                        self._finished_before, self._finished = self._finished, {}
                continue
            seen = self._finished.get(sid)
            if seen is None:
                seen = self._finished_before.get(sid)
            if seen is not None:
                if seen & bit:
                    out.duplicates += 1
                else:
                    self._remember(sid, seen | bit)
                    out.late += 1
                    accepted.append(position)
                continue
            entry = template.copy()
            entry[FIRST_SEEN], entry[MASK], entry[slot_at] = now_ms, bit, slots[position]
            if positions:
                entry[POSITION] = at = positions[position]
                if at != NO_POSITION:
                    opened.append((at, sid))
            pending[sid] = entry
            accepted.append(position)
        while len(pending) > self.max_pending:
            sid, entry = pending.popitem(last=False)
            self._remember(sid, entry[MASK])
            out.evicted.append(entry)
        return out

    def settle(self) -> list[Entry]:
        """Pending signals that every absent side has moved past: they will never complete; they leave
        the buffer. Each opener's queue is in input order, so settling stops at the first that waits."""
        frontiers, full, pending = self.frontiers, self._full, self._pending
        settled: list[Entry] = []
        for queue in self._by_opener:
            while queue:
                at, sid = queue[0]
                entry = pending.get(sid)
                if entry is None or entry[POSITION] != at:  # completed or evicted meanwhile
                    queue.popleft()
                    continue
                absent = full & ~entry[MASK]
                if any(absent >> side & 1 and frontiers[side] <= at for side in range(self.n_sides)):
                    break  # a side that has not produced it yet has not moved past it either: awaiting
                queue.popleft()
                del pending[sid]
                self._remember(sid, entry[MASK])
                settled.append(entry)
        return settled

    def awaiting(self) -> list[int]:
        """Per side: pending signals it has not produced yet (a slower side's backlog as seen here)."""
        counts = [0] * self.n_sides
        for entry in self._pending.values():
            mask = entry[MASK]
            for side in range(self.n_sides):
                if not mask >> side & 1:
                    counts[side] += 1
        return counts

    def expire(self, now_ms: float, *, unordered_only: bool = False) -> list[Entry]:
        """Pending signals first seen at least timeout_ms ago, oldest first; they leave the buffer.

        `unordered_only`: only those without an input position, which progress cannot settle."""
        cutoff = now_ms - self.timeout_ms
        expired: list[tuple[str, Entry]] = []
        for sid, entry in self._pending.items():
            if entry[FIRST_SEEN] > cutoff:
                break  # arrival order: everything after is younger
            if not unordered_only or entry[POSITION] == NO_POSITION:
                expired.append((sid, entry))
        for sid, entry in expired:
            del self._pending[sid]
            self._remember(sid, entry[MASK])
        return [entry for _, entry in expired]

    def _remember(self, sid: str, mask: int) -> None:
        self._finished[sid] = mask
        if len(self._finished) >= self.max_pending:
            self._finished_before, self._finished = self._finished, {}

    def to_wire(self) -> dict[str, Any]:
        return {
            # Positions exceed msgpack's 64-bit integers (ms << 32): they travel as decimal text.
            "pending": [[sid, entry[FIRST_SEEN], entry[MASK], str(entry[POSITION]), *entry[SLOTS:]]
                        for sid, entry in self._pending.items()],
            "finished": self._finished,
            "finished_before": self._finished_before,
            "frontiers": [str(position) for position in self.frontiers],
        }

    def restore(self, raw: dict[str, Any]) -> None:
        rows = [list(row) for row in raw["pending"]]
        for row in rows:
            if len(row) == 3 + self.n_sides:  # saved before entries carried their input position
                row.insert(1 + POSITION, NO_POSITION)
        self._pending = OrderedDict(
            (row[0], [row[1], row[2], int(row[3]), *(tuple(slot) if slot is not None else None for slot in row[4:])])
            for row in rows
        )
        self._finished = dict(raw["finished"])
        self._finished_before = dict(raw["finished_before"])
        self.frontiers = [int(v) for v in raw.get("frontiers", [NO_POSITION] * self.n_sides)]
        ordered = sorted((entry[POSITION], sid) for sid, entry in self._pending.items()
                         if entry[POSITION] != NO_POSITION)
        self._by_opener = [deque(ordered), *(deque() for _ in range(self.n_sides - 1))]
