"""The comparator's whole state: joins decoded results by id, keeps streaming metrics, persists itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from harness.comparator import agreement
from harness.comparator.agreement import recode
from harness.comparator.columns import Codes, Columns, to_columns
from harness.comparator.join import NO_POSITION, Finished, JoinBuffer
from harness.comparator.pairs import PairCodes, PairStats
from harness.comparator.reservoir import DEFAULT_CAPACITY
from harness.comparator.series import AgreementSeries
from harness.comparator.side_stats import SideStats
from harness.comparator.truth import MISSING_SLOT, TruthStats
from harness.contracts import DEFAULT_LABEL
from harness.report.schema import build_report

PRIMARY_SIDES = ("legacy", "candidate")
REPLICA = "replica"  # a second legacy instance: legacy vs replica is the A/A noise floor
STATE_FORMAT = "harness.comparator-state/1"

JOIN_MODES = ("progress", "time")  # missing once a side has moved past the entry, or after a timeout


class ComparatorState:
    """Feed it batches of decoded `SignalClustered` results per side; ask it for a report at any time.

    Agreement uses the pairs where both sides clustered the signal; pairs with an error or an
    unclustered outcome on either side are accounted for in the errors section instead.
    """

    def __init__(
        self,
        *,
        timeout_ms: float = 30_000,
        max_pending: int = 200_000,
        window: int = 1_000,
        sides: Sequence[str] = PRIMARY_SIDES,
        sample_size: int = DEFAULT_CAPACITY,
        seed: int = 0,
        device_limit: int = 50,
        map_limit: int = 20,
        min_share: float = 0.1,
        join: str = "progress",
    ) -> None:
        sides = tuple(sides)
        if join not in JOIN_MODES:
            raise ValueError(f"join must be one of {', '.join(JOIN_MODES)}, got {join!r}")
        if sides not in (PRIMARY_SIDES, (*PRIMARY_SIDES, REPLICA)):
            raise ValueError(f"sides must be {PRIMARY_SIDES} or {(*PRIMARY_SIDES, REPLICA)}, got {sides}")
        self.sides = sides
        self.options: dict[str, Any] = {
            "timeout_ms": float(timeout_ms), "max_pending": int(max_pending), "window": int(window),
            "sample_size": int(sample_size), "seed": int(seed), "device_limit": int(device_limit),
            "map_limit": int(map_limit), "min_share": float(min_share), "join": join}
        self._side_index = {side: index for index, side in enumerate(sides)}
        self._join = JoinBuffer(len(sides), timeout_ms, max_pending)
        # per-side label codes; devices, kinds and error types share one code space across sides
        self._labels: list[dict[Any, int]] = [{} for _ in sides]
        self._devices: dict[Any, int] = {}
        self._kinds: dict[Any, int] = {}
        self._error_types: dict[Any, int] = {}
        self._stats = [SideStats(sample_size, seed + index) for index in range(len(sides))]
        self._primary = PairStats(window, TruthStats(sample_size, seed))
        self._noise = PairStats(window) if REPLICA in sides else None
        self._series = AgreementSeries(_series_step(window))
        self._now_ms: float | None = None  # the latest clock reading given, to date the series' points
        self.counters = {"duplicates": 0, "evicted": 0, "late": 0, "rejected": 0}

    # --- ingestion ------------------------------------------------------------------------------

    def ingest(self, side: str, records: Sequence[Mapping[str, Any] | list[Any]], now_ms: float) -> None:
        """Records are decoded results: rows in the wire order (RESULT_KEYS) or maps of wire keys."""
        index = self._side_index.get(side)
        if index is None:
            raise ValueError(f"unknown side {side!r}; this comparator joins {', '.join(self.sides)}")
        self._ingest(index, to_columns(records, self._codes(index)), now_ms)

    def codes(self, side: str) -> Codes:
        """The code maps a batch of `side` is coded with (see ingest_columns)."""
        return self._codes(self.sides.index(side))

    def ingest_columns(self, side: str, columns: Columns, now_ms: float) -> None:
        """A batch already in columns, coded with `codes(side)` (see wire.parse_entries)."""
        self._ingest(self.sides.index(side), columns, now_ms)

    def _codes(self, index: int) -> Codes:
        return Codes(self._labels[index], self._devices, self._kinds, self._error_types)

    def _ingest(self, index: int, columns: Columns, now_ms: float) -> None:
        self._now_ms = now_ms
        self.counters["rejected"] += columns.rejected
        offered = self._join.offer(index, columns.ids, columns.slots, now_ms, (columns.high, columns.low))
        self.counters["duplicates"] += offered.duplicates
        self.counters["late"] += offered.late
        accepted = offered.accepted
        outcomes, end_to_end, processing = columns.outcomes, columns.end_to_end, columns.processing
        if accepted.size != len(columns.ids):
            outcomes, end_to_end, processing = outcomes[accepted], end_to_end[accepted], processing[accepted]
        self._stats[index].record(outcomes, end_to_end, processing)
        self._finish(offered.completed, expired=False)
        if len(offered.evicted):
            self.counters["evicted"] += len(offered.evicted)
            self._finish(offered.evicted, expired=False)

    @property
    def join_mode(self) -> str:
        return str(self.options.get("join", "time"))

    def advance(self, now_ms: float, *, caught_up: bool = True) -> None:
        """Count as missing what will never come: by progress (exact), or by the timeout in time mode.

        The timeout is applied only once `caught_up`: a partner not read yet is not a partner that
        never comes (after a restart, it may be deep in the backlog)."""
        self._now_ms = now_ms
        if self.join_mode == "progress":
            self._finish(self._join.settle(), expired=True)
            if caught_up:
                # A result without an input entry id (hand-made, or from an older worker) cannot be
                # placed in the input order: the timeout still decides for those alone.
                self._finish(self._join.expire(now_ms, unordered_only=True), expired=True)
        elif caught_up:
            self.expire(now_ms)

    def expire(self, now_ms: float) -> None:
        """Count every pending signal older than the timeout as missing on its absent sides."""
        self._finish(self._join.expire(now_ms), expired=True)

    def pending_count(self) -> int:
        return len(self._join)

    def slowest_sides(self) -> list[str]:
        """The sides whose progress is the least (all of them when they are level)."""
        frontiers = self._join.frontiers
        slowest = min(frontiers)
        return [side for side, frontier in zip(self.sides, frontiers, strict=True) if frontier == slowest]

    def progress(self) -> dict[str, Any]:
        """The join mode, and per side: its frontier (input entry of its latest result) and awaiting count."""
        awaiting = self._join.awaiting()
        return {"join": self.join_mode, "sides": {
            side: {"frontier": _entry_id(self._join.frontiers[index]), "awaiting": awaiting[index]}
            for index, side in enumerate(self.sides)}}

    def _finish(self, finished: Finished, *, expired: bool) -> None:
        """Feed the pairs of finished signals; an expired signal counts as missing on its absent sides."""
        if not len(finished):
            return
        masks, slots = finished.masks, finished.slots
        if expired:
            for index, stats in enumerate(self._stats):
                stats.missing += int(np.count_nonzero(masks >> index & 1 == 0))
        self._feed(self._primary, masks, slots, 1)
        self._series.observe(self._primary.pairs, self._now_ms, self._primary.window.table)
        self._feed_one_sided_truth(masks, slots)
        if self._noise is not None:
            self._feed(self._noise, masks, slots, 2)

    def _feed_one_sided_truth(self, masks: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]) -> None:
        """A signal only one primary side answered still counts in the truth: the other side's is missing."""
        one_sided = masks & 3 != 3
        truth = self._primary.truth
        if truth is not None and one_sided.any():
            chosen, seen = slots[one_sided], masks[one_sided]
            left, right = chosen[:, 0].copy(), chosen[:, 1].copy()
            left[seen & 1 == 0] = MISSING_SLOT
            right[seen & 2 == 0] = MISSING_SLOT
            truth.add(left, right)

    @staticmethod
    def _feed(stats: PairStats, masks: npt.NDArray[np.int64], slots: npt.NDArray[np.int64], right: int) -> None:
        both = 1 | 1 << right
        chosen = masks & both == both
        if not chosen.all():
            slots = slots[chosen]
        stats.add(slots[:, 0], slots[:, right])

    # --- merging shards -------------------------------------------------------------------------

    @classmethod
    def merged(cls, states: Sequence[ComparatorState]) -> ComparatorState:
        """One state holding what every given state counted (one per partition): see `merge`."""
        if not states:
            raise ValueError("nothing to merge: give at least one comparator state")
        result = cls(sides=states[0].sides, **states[0].options)
        for state in states:
            result.merge(state)
        return result

    def merge(self, other: ComparatorState) -> None:
        """Add `other`'s counts: contingency tables, histograms, counters, truth tallies and per-side stats
        add up exactly (labels, devices, kinds and error types matched by name); the samples merge by the
        reservoirs' rule, the recent window and the series by theirs (see PairWindow, AgreementSeries);
        pending joins are pooled and each side's frontier is the furthest. Options are this state's."""
        if other.sides != self.sides:
            raise ValueError(f"cannot merge a comparison of {other.sides} into one of {self.sides}")
        labels = [_adopt(mine, theirs) for mine, theirs in zip(self._labels, other._labels, strict=True)]
        devices, kinds = _adopt(self._devices, other._devices), _adopt(self._kinds, other._kinds)
        error_types = _adopt(self._error_types, other._error_types)
        for mine, theirs in zip(self._stats, other._stats, strict=True):
            mine.merge(theirs)
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0) + value
        self._primary.merge(other._primary, PairCodes(labels[0], labels[1], devices, kinds, error_types))
        if self._noise is not None and other._noise is not None:
            self._noise.merge(other._noise, PairCodes(labels[0], labels[2], devices, kinds, error_types))
        self._series.merge(other._series)
        maps = (devices, kinds, error_types)

        def recode_slot(side: int, slot: list[int]) -> list[int]:
            outcome, label, *rest = slot
            codes = (labels[side], *maps)
            return [outcome, *(int(recode(np.array([value]), table)[0]) for value, table in
                               zip((label, *rest), codes, strict=True))]

        self._join.merge(other._join, recode_slot)
        if other._now_ms is not None:
            self._now_ms = max(self._now_ms or other._now_ms, other._now_ms)

    # --- report ---------------------------------------------------------------------------------

    def report(self, produced: int | None = None, *, generated_at: str | None = None) -> dict[str, Any]:
        legacy, candidate = self._stats[0], self._stats[1]
        counts = {
            "produced": produced,
            "legacy_outputs": legacy.outputs,
            "candidate_outputs": candidate.outputs,
            "matched": self._primary.matched,
            "missing_legacy": legacy.missing,
            "missing_candidate": candidate.missing,
            **self.counters,
            "pending": len(self._join),
        }
        legacy_p99, candidate_p99 = legacy.end_to_end.percentile(99), candidate.end_to_end.percentile(99)
        latency = {
            "legacy": legacy.latency_section(),
            "candidate": candidate.latency_section(),
            "p99_ratio": _ratio(candidate_p99, legacy_p99),
            "samples": {"legacy": legacy.sample.sample().tolist(), "candidate": candidate.sample.sample().tolist()},
        }
        errors = {"legacy": legacy.outcome_section(), "candidate": candidate.outcome_section(),
                  **self._primary.errors_section(list(self._error_types))}
        return build_report(counts=counts, agreement=self._agreement_section(), latency_ms=latency,
                            errors=errors, noise_floor=self._noise_floor_section(legacy_p99),
                            progress=self.progress(), generated_at=generated_at)

    def _main_table(self) -> tuple[agreement.Table, list[str], list[str]]:
        """The contingency table in name order (see Table.canonical), with legacy's and the candidate's names."""
        return self._primary.main_table().canonical([str(name) for name in self._labels[0]],
                                                    [str(name) for name in self._labels[1]])

    def _agreement_section(self) -> dict[str, Any]:
        table, legacy_names, candidate_names = self._main_table()
        device_names = [str(name) for name in self._devices]
        window_table = self._primary.window.table()
        device_count, device_tables = self._primary.device_tables(int(self.options["device_limit"]), device_names)
        return {
            **agreement.summary(table),
            "legacy_clusters": int(table.margins[0].size),
            "candidate_clusters": int(table.margins[2].size),
            "window": {"size": self._primary.window.size, **agreement.summary(window_table)},
            # The default cluster holds most pairs of signals and dominates ARI; this scope leaves
            # out the pairs both sides called default, so disagreement on anomalies shows.
            "anomalies": {"default_label": DEFAULT_LABEL, **agreement.summary(table.without_cell(
                _code_of(legacy_names, DEFAULT_LABEL), _code_of(candidate_names, DEFAULT_LABEL)))},
            "truth": self.truth_section(),
            "per_device": {device_names[code]: agreement.summary(t) for code, t in device_tables},
            "devices": device_count,
            "cluster_map": agreement.cluster_map(
                table, legacy_names, candidate_names,
                min_share=float(self.options["min_share"]), limit=int(self.options["map_limit"])),
            "contingency": agreement.contingency_section(table, legacy_names, candidate_names),
            "series": self._series.section(),
        }

    def label_mapping(self) -> dict[str, str]:
        """The optimal one-to-one mapping of candidate labels into legacy's, from the whole contingency table."""
        table, legacy_names, candidate_names = self._main_table()
        rows, cols = agreement.best_matching(table)
        return {candidate_names[col]: legacy_names[row]
                for row, col in zip(rows.tolist(), cols.tolist(), strict=True)}

    def truth_section(self, *, control: bool = True) -> dict[str, Any] | None:
        """agreement.truth; `control=False` scores the candidate alone (a backtest without a control)."""
        truth = self._primary.truth
        if truth is None:
            return None
        return truth.section([str(kind) for kind in self._kinds], [str(name) for name in self._labels[0]],
                             [str(name) for name in self._labels[1]], control=control)

    def _noise_floor_section(self, legacy_p99: float | None) -> dict[str, Any] | None:
        if self._noise is None:
            return None
        replica = self._stats[2]
        replica_p99 = replica.end_to_end.percentile(99)
        spread = abs(replica_p99 - legacy_p99) if replica_p99 is not None and legacy_p99 is not None else None
        return {
            "matched": self._noise.matched,
            "replica_outputs": replica.outputs,
            "missing_replica": replica.missing,
            **agreement.summary(self._noise.main_table()),
            "replica": replica.outcome_section(),
            "latency_ms": {"legacy_p99": legacy_p99, "replica_p99": replica_p99,
                           "p99_spread": spread, "p99_ratio": _ratio(replica_p99, legacy_p99)},
        }

    # --- persistence ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        wire = {
            "format": STATE_FORMAT,
            "sides": list(self.sides),
            "options": self.options,
            "labels": [list(labels) for labels in self._labels],
            "devices": list(self._devices),
            "kinds": list(self._kinds),
            "error_types": list(self._error_types),
            "stats": [stats.to_wire() for stats in self._stats],
            "counters": self.counters,
            "join": self._join.to_wire(),
            "primary": self._primary.to_wire(),
            "noise": self._noise.to_wire() if self._noise is not None else None,
            "series": self._series.to_wire(),
        }
        return bytes(msgpack.packb(wire, use_bin_type=True))

    @classmethod
    def from_bytes(cls, payload: bytes) -> ComparatorState:
        try:
            raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ValueError(f"not a saved comparator state: {type(exc).__name__}") from None
        if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
            raise ValueError(f"not a saved comparator state (expected format {STATE_FORMAT!r})")
        state = cls(sides=raw["sides"], **raw["options"])
        state._labels = [{name: code for code, name in enumerate(names)} for names in raw["labels"]]
        state._devices = {name: code for code, name in enumerate(raw["devices"])}
        state._kinds = {name: code for code, name in enumerate(raw["kinds"])}
        state._error_types = {name: code for code, name in enumerate(raw["error_types"])}
        state._stats = [SideStats.from_wire(stats) for stats in raw["stats"]]
        state.counters = {key: int(value) for key, value in raw["counters"].items()}
        state._join.restore(raw["join"])
        state._primary = PairStats.from_wire(raw["primary"], truth=state._primary.truth)
        state._noise = PairStats.from_wire(raw["noise"]) if raw["noise"] is not None else None
        state._series = (AgreementSeries.from_wire(raw["series"]) if raw.get("series") else  # absent: saved before
                         AgreementSeries.starting_at(_series_step(state._primary.window.size), state._primary.pairs))
        return state


def _adopt(mine: dict[Any, int], theirs: dict[Any, int]) -> npt.NDArray[np.int64]:
    """Their code -> my code for each of their names, giving my next codes to names new to me."""
    return np.array([mine.setdefault(name, len(mine)) for name in theirs], dtype=np.int64)


def _code_of(names: list[str], name: str) -> int | None:
    return names.index(name) if name in names else None


def _series_step(window: int) -> int:
    # a point every quarter window: the windows overlap, so the curve is smooth without costing much
    return max(window // 4, 1)


def _entry_id(position: int) -> str | None:
    return None if position == NO_POSITION else f"{position >> 32}-{position & 0xFFFFFFFF}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator
