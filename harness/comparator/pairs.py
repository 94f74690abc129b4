"""Everything learned from the matched pairs of two sides: contingency, window, devices, truth, error divergence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator.agreement import CODE_BITS, SparseCounts, Table, cell_keys, name_ranks, recode, recode_keys
from harness.comparator.join import Slot
from harness.comparator.truth import TruthStats

Ints = npt.NDArray[np.int64]

CLUSTERED, UNCLUSTERED, ERROR = 0, 1, 2  # outcome codes, in the order of contracts.OUTCOMES
OUTCOME, LABEL, DEVICE, KIND, ERR_TYPE = range(5)  # positions in a Slot
_CELL_MASK = (1 << CODE_BITS) - 1


@dataclass(frozen=True)
class PairCodes:
    """Old code -> new code, per code space, for folding one state's pairs into another's."""

    left: Ints
    right: Ints
    devices: Ints
    kinds: Ints
    error_types: Ints


class PairWindow:
    """The label codes of the last `size` agreement pairs, in a ring."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("the agreement window needs a positive size")
        self.size = size
        self._left = np.zeros(size, dtype=np.int64)
        self._right = np.zeros(size, dtype=np.int64)
        self._next = 0
        self.filled = 0

    def push(self, left: Ints, right: Ints) -> None:
        if left.size >= self.size:
            self._left[:], self._right[:] = left[-self.size :], right[-self.size :]
            self._next, self.filled = 0, self.size
            return
        at = (self._next + np.arange(left.size)) % self.size
        self._left[at], self._right[at] = left, right
        self._next = (self._next + left.size) % self.size
        self.filled = min(self.size, self.filled + left.size)

    def oldest_first(self) -> tuple[Ints, Ints]:
        order = (self._next - self.filled + np.arange(self.filled)) % self.size
        return self._left[order], self._right[order]

    def merge(self, other: PairWindow, left_codes: Ints, right_codes: Ints) -> None:
        """Merge rule: the newest pairs of each window, taken in turn, up to the size: shards do not share
        one order of arrival, so a merged window is each shard's recent agreement, evenly."""
        mine, theirs = self.oldest_first(), other.oldest_first()
        theirs = recode(theirs[0], left_codes), recode(theirs[1], right_codes)
        newest = [side[::-1] for side in (*mine, *theirs)]
        taken = min(mine[0].size, theirs[0].size)
        # newest first: alternating while both last, then the longer one's rest
        left = np.concatenate([np.column_stack((newest[0][:taken], newest[2][:taken])).ravel(),
                               newest[0][taken:], newest[2][taken:]])[: self.size]
        right = np.concatenate([np.column_stack((newest[1][:taken], newest[3][:taken])).ravel(),
                                newest[1][taken:], newest[3][taken:]])[: self.size]
        self._next, self.filled = 0, 0
        self.push(left[::-1].copy(), right[::-1].copy())

    def table(self) -> Table:
        # the window is bounded, so building its table at report time is cheap and always exact
        return Table.from_pairs(self._left[: self.filled], self._right[: self.filled])

    def to_wire(self) -> dict[str, Any]:
        # stored oldest first, so the ring restores into any position
        left, right = self.oldest_first()
        return {"l": left.astype("<i8").tobytes(), "r": right.astype("<i8").tobytes()}

    def restore(self, raw: dict[str, Any]) -> None:
        left = np.frombuffer(raw["l"], dtype="<i8").astype(np.int64)
        right = np.frombuffer(raw["r"], dtype="<i8").astype(np.int64)
        self._next, self.filled = 0, 0
        self.push(left, right)


class PairStats:
    """Streaming statistics over the pairs (left result, right result) of signals seen on both sides."""

    def __init__(self, window: int, truth: TruthStats | None = None) -> None:
        self.matched = 0
        self.pairs = 0  # pairs both sides clustered: the agreement population, the table's total
        self.table = SparseCounts()  # (left label, right label) -> pairs; both sides clustered
        self.by_device = SparseCounts()  # (device, cell of self.table) -> pairs
        self.truth = truth  # every outcome of labelled signals, not only the pairs both sides clustered
        self.window = PairWindow(window)
        self.outcomes = np.zeros((3, 3), dtype=np.int64)  # left outcome × right outcome
        self.error_types: dict[int, list[int]] = {}  # error type code -> [only left, only right, both]

    def add(self, left_slots: Ints | Sequence[Slot], right_slots: Ints | Sequence[Slot]) -> None:
        """Slots (n, 5) of the same signals on each side."""
        left = np.asarray(left_slots, dtype=np.int64).reshape(-1, 5)
        right = np.asarray(right_slots, dtype=np.int64).reshape(-1, 5)
        if not left.shape[0]:
            return
        self.matched += left.shape[0]
        self.outcomes += np.bincount(left[:, OUTCOME] * 3 + right[:, OUTCOME], minlength=9).reshape(3, 3)
        if self.truth is not None:
            self.truth.add(left, right)
        failed = (left[:, OUTCOME] == ERROR) | (right[:, OUTCOME] == ERROR)
        if failed.any():
            self._count_error_types(left[failed], right[failed])
        both = (left[:, OUTCOME] == CLUSTERED) & (right[:, OUTCOME] == CLUSTERED)
        left, right = left[both], right[both]
        if left.shape[0] == 0:
            return
        self.pairs += left.shape[0]
        left_labels, right_labels = left[:, LABEL], right[:, LABEL]
        cells = self.table.add(cell_keys(left_labels, right_labels))
        self.window.push(left_labels, right_labels)
        device = np.where(left[:, DEVICE] >= 0, left[:, DEVICE], right[:, DEVICE])
        known = device >= 0
        self.by_device.add(cell_keys(device[known], cells[known]))

    def _count_error_types(self, left: Ints, right: Ints) -> None:
        for left_outcome, left_type, right_outcome, right_type in zip(
            left[:, OUTCOME].tolist(), left[:, ERR_TYPE].tolist(),
            right[:, OUTCOME].tolist(), right[:, ERR_TYPE].tolist(), strict=True,
        ):
            if left_outcome == ERROR and right_outcome == ERROR:
                # a pair failing with two different types is counted under each of them
                for code in {left_type, right_type}:
                    self.error_types.setdefault(code, [0, 0, 0])[2] += 1
            elif left_outcome == ERROR:
                self.error_types.setdefault(left_type, [0, 0, 0])[0] += 1
            else:
                self.error_types.setdefault(right_type, [0, 0, 0])[1] += 1

    def merge(self, other: PairStats, codes: PairCodes) -> None:
        """Add another shard's pairs; its codes pass through `codes` into this one's code space."""
        self.matched += other.matched
        self.pairs += other.pairs
        cells = self.table.add_counts(recode_keys(other.table.keys, codes.left, codes.right), other.table.counts)
        device_keys = other.by_device.keys
        self.by_device.add_counts(cell_keys(recode(device_keys >> CODE_BITS, codes.devices),
                                            cells[device_keys & _CELL_MASK]), other.by_device.counts)
        if self.truth is not None and other.truth is not None:
            self.truth.merge(other.truth, codes.kinds, codes.left, codes.right)
        self.window.merge(other.window, codes.left, codes.right)
        self.outcomes += other.outcomes
        for code, counts in other.error_types.items():
            mine = self.error_types.setdefault(int(recode(np.array([code]), codes.error_types)[0]), [0, 0, 0])
            mine[:] = [a + b for a, b in zip(mine, counts, strict=True)]

    # --- report sections ------------------------------------------------------------------------

    def main_table(self) -> Table:
        return Table.from_keys(self.table.keys, self.table.counts)

    def device_tables(self, limit: int, names: Sequence[str] | None = None) -> tuple[int, list[tuple[int, Table]]]:
        """(number of devices, [(device code, table)] for the `limit` devices with the most pairs; equal
        ones in the order of their `names` when given, else of their codes)."""
        keys, counts = self.by_device.keys, self.by_device.counts
        if keys.size == 0:
            return 0, []
        devices = keys >> CODE_BITS
        cells = keys & _CELL_MASK
        codes, at = np.unique(devices, return_inverse=True)
        per_device = np.bincount(at, weights=counts)
        tie = name_ranks(names)[0][codes] if names is not None else codes
        chosen = codes[np.lexsort((tie, -per_device))[:limit]]
        order = np.argsort(devices, kind="stable")
        sorted_devices = devices[order]
        cell_keys_all = self.table.keys
        tables = []
        for device in chosen.tolist():
            lo, hi = np.searchsorted(sorted_devices, [device, device + 1])
            picked = order[lo:hi]
            tables.append((device, Table.from_keys(cell_keys_all[cells[picked]], counts[picked])))
        return int(codes.size), tables

    def errors_section(self, error_names: Sequence[str]) -> dict[str, Any]:
        grid = self.outcomes
        only_left = int(grid[ERROR, CLUSTERED] + grid[ERROR, UNCLUSTERED])
        only_right = int(grid[CLUSTERED, ERROR] + grid[UNCLUSTERED, ERROR])
        by_type = {
            error_names[code] if code >= 0 else "unknown": {
                "only_legacy": counts[0], "only_candidate": counts[1], "both": counts[2]}
            for code, counts in sorted(self.error_types.items(), key=lambda item: -sum(item[1]))
        }
        return {
            "only_legacy": only_left,
            "only_candidate": only_right,
            "both": int(grid[ERROR, ERROR]),
            "by_type": by_type,
            "unclustered_only_legacy": int(grid[UNCLUSTERED, CLUSTERED]),
            "unclustered_only_candidate": int(grid[CLUSTERED, UNCLUSTERED]),
            "both_unclustered": int(grid[UNCLUSTERED, UNCLUSTERED]),
        }

    # --- persistence ----------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "pairs": self.pairs,
            "table": self.table.to_wire(),
            "by_device": self.by_device.to_wire(),
            "truth": self.truth.to_wire() if self.truth is not None else None,
            "window": self.window.to_wire(),
            "window_size": self.window.size,
            "outcomes": self.outcomes.ravel().tolist(),
            "error_types": [[code, *counts] for code, counts in self.error_types.items()],
        }

    @classmethod
    def from_wire(cls, raw: dict[str, Any], *, truth: TruthStats | None = None) -> PairStats:
        """`truth`: a fresh TruthStats for the primary pair, used when the saved state has none."""
        stats = cls(int(raw["window_size"]))
        stats.matched = int(raw["matched"])
        stats.table = SparseCounts.from_wire(raw["table"])
        stats.pairs = int(raw["pairs"]) if "pairs" in raw else stats.table.total  # saved before it was kept
        stats.by_device = SparseCounts.from_wire(raw["by_device"])
        if truth is not None:
            # A state saved before every outcome counted has no "truth": its truth restarts rather than
            # mix clustered-only counts with the rest.
            stats.truth = TruthStats.from_wire(raw["truth"]) if raw.get("truth") else truth
        stats.window.restore(raw["window"])
        stats.outcomes = np.asarray(raw["outcomes"], dtype=np.int64).reshape(3, 3)
        stats.error_types = {int(row[0]): [int(v) for v in row[1:]] for row in raw["error_types"]}
        return stats
