"""Mergeable log-bucketed latency histogram (HdrHistogram-like, ≤ 0.05 % relative error), numpy-vectorised."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

GROWTH = 1.001  # bucket i holds [GROWTH**i, GROWTH**(i+1)) µs: a bucket's midpoint is within 0.05 % of any member
MIN_US = 1.0  # values below 1 µs (including negative clock skew) are clamped up to it
MAX_US = 3_600_000_000.0  # 1 hour; anything slower is clamped down to it
_LOG_GROWTH = math.log(GROWTH)
BUCKETS = math.floor(math.log(MAX_US) / _LOG_GROWTH) + 1

Floats = npt.NDArray[np.float64]


class LatencyHistogram:
    """Counts of latencies (recorded in ms, bucketed in µs); percentiles follow numpy's 'linear' method."""

    __slots__ = ("_counts", "_max_us", "_min_us", "count")

    def __init__(self) -> None:
        self._counts = np.zeros(BUCKETS, dtype=np.int64)
        self.count = 0
        self._min_us = math.inf
        self._max_us = -math.inf

    def record_many(self, values_ms: npt.ArrayLike) -> None:
        micros = np.clip(np.asarray(values_ms, dtype=np.float64) * 1000.0, MIN_US, MAX_US)
        micros = micros[~np.isnan(micros)]
        if micros.size == 0:
            return
        buckets = np.minimum((np.log(micros) / _LOG_GROWTH).astype(np.int64), BUCKETS - 1)
        low = int(buckets.min())
        # bincount over the batch's own range keeps the cost proportional to its spread, not to BUCKETS
        spread = np.bincount(buckets - low)
        self._counts[low : low + spread.size] += spread
        self.count += int(micros.size)
        self._min_us = min(self._min_us, float(micros.min()))
        self._max_us = max(self._max_us, float(micros.max()))

    def merge(self, other: LatencyHistogram) -> None:
        self._counts += other._counts
        self.count += other.count
        self._min_us = min(self._min_us, other._min_us)
        self._max_us = max(self._max_us, other._max_us)

    @property
    def max(self) -> float | None:
        return self._max_us / 1000.0 if self.count else None

    @property
    def min(self) -> float | None:
        return self._min_us / 1000.0 if self.count else None

    def percentile(self, q: float) -> float | None:
        """The q-th percentile in ms (0 ≤ q ≤ 100), or None when nothing was recorded."""
        return self.percentiles([q])[0]

    def percentiles(self, qs: list[float]) -> list[float | None]:
        if not self.count:
            return [None] * len(qs)
        cumulative = np.cumsum(self._counts)
        return [self._at_rank(cumulative, q) for q in qs]

    def _at_rank(self, cumulative: npt.NDArray[np.int64], q: float) -> float:
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within [0, 100], got {q}")
        rank = q / 100.0 * (self.count - 1)
        below, above = math.floor(rank), math.ceil(rank)
        buckets = np.searchsorted(cumulative, [below + 1, above + 1])
        low_value, high_value = self._value_us(int(buckets[0])), self._value_us(int(buckets[1]))
        # the smallest and largest values are known exactly; use them rather than their buckets
        if below == 0:
            low_value = self._min_us
        if above == self.count - 1:
            high_value = self._max_us
        value = low_value + (high_value - low_value) * (rank - below)
        return min(max(value, self._min_us), self._max_us) / 1000.0

    def summary(self) -> dict[str, float | None]:
        p50, p95, p99 = self.percentiles([50.0, 95.0, 99.0])
        return {"p50": p50, "p95": p95, "p99": p99, "max": self.max}

    def to_bytes(self) -> bytes:
        """Sparse form: the indices and counts of the non-empty buckets, plus the exact extremes."""
        nonzero = np.flatnonzero(self._counts)
        return bytes(
            msgpack.packb(
                {
                    "i": nonzero.astype("<u2").tobytes(),
                    "c": self._counts[nonzero].astype("<i8").tobytes(),
                    "min": self._min_us if self.count else None,
                    "max": self._max_us if self.count else None,
                },
                use_bin_type=True,
            )
        )

    @classmethod
    def from_bytes(cls, payload: bytes) -> LatencyHistogram:
        raw: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        hist = cls()
        indices = np.frombuffer(raw["i"], dtype="<u2").astype(np.int64)
        hist._counts[indices] = np.frombuffer(raw["c"], dtype="<i8")
        hist.count = int(hist._counts.sum())
        if hist.count:
            hist._min_us, hist._max_us = float(raw["min"]), float(raw["max"])
        return hist

    @staticmethod
    def _value_us(bucket: int) -> float:
        # geometric midpoint: the representative with the smallest worst-case relative error
        return float(GROWTH ** (bucket + 0.5))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            self.count == other.count
            and bool(np.array_equal(self._counts, other._counts))
            and (not self.count or (self._min_us, self._max_us) == (other._min_us, other._max_us))
        )

    __hash__ = None  # type: ignore[assignment]
