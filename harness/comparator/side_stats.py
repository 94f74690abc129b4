"""One side's own figures, matched or not: outcome counts, latency histograms and a latency sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator.columns import OUTCOME_CODES
from harness.comparator.latency import LatencyHistogram
from harness.comparator.reservoir import Reservoir


class SideStats:
    """What one side produced, matched or not: outcome counts and latency distributions."""

    def __init__(self, sample_size: int, seed: int) -> None:
        self.outputs = 0
        self.missing = 0
        self.outcomes = [0, 0, 0]
        self.end_to_end = LatencyHistogram()
        self.processing = LatencyHistogram()
        self.sample = Reservoir(sample_size, seed)

    def record(self, outcomes: npt.NDArray[np.int64], end_to_end: npt.NDArray[np.float64],
               processing: npt.NDArray[np.float64]) -> None:
        if not outcomes.size:
            return
        self.outputs += int(outcomes.size)
        for code, count in enumerate(np.bincount(outcomes, minlength=3).tolist()):
            self.outcomes[code] += count
        end_to_end_ms = np.asarray(end_to_end, dtype=np.float64)
        self.end_to_end.record_many(end_to_end_ms)
        self.processing.record_many(np.asarray(processing, dtype=np.float64))
        # A tapped production worker reports no timings (NaN): it counts, but not in the latencies.
        self.sample.offer_many(end_to_end_ms[~np.isnan(end_to_end_ms)])

    def latency_section(self) -> dict[str, Any]:
        return {**self.end_to_end.summary(), "count": self.end_to_end.count,
                "processing": self.processing.summary()}

    def outcome_section(self) -> dict[str, int]:
        return dict(zip(OUTCOME_CODES, self.outcomes, strict=True))

    def merge(self, other: SideStats) -> None:
        self.outputs += other.outputs
        self.missing += other.missing
        self.outcomes = [a + b for a, b in zip(self.outcomes, other.outcomes, strict=True)]
        self.end_to_end.merge(other.end_to_end)
        self.processing.merge(other.processing)
        self.sample.merge(other.sample)

    def to_wire(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "missing": self.missing, "outcomes": self.outcomes,
                "e2e": self.end_to_end.to_bytes(), "proc": self.processing.to_bytes(),
                "sample": self.sample.to_wire()}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> SideStats:
        stats = cls(1, 0)
        stats.outputs, stats.missing = int(raw["outputs"]), int(raw["missing"])
        stats.outcomes = [int(v) for v in raw["outcomes"]]
        stats.end_to_end = LatencyHistogram.from_bytes(raw["e2e"])
        stats.processing = LatencyHistogram.from_bytes(raw["proc"])
        stats.sample = Reservoir.from_wire(raw["sample"])
        return stats
