"""Agreement over time: the window's metrics sampled every `every` pairs, in a bounded list that thins itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.comparator.agreement import Table, summary

DEFAULT_CAPACITY = 512  # points kept; when full, every other one goes and the step doubles
MERGE_BUCKET_MS = 1_000.0  # shards' points within one such bucket become one point of a merged series


class AgreementSeries:
    """Points (time ms, pairs so far, ARI, NMI, matched accuracy) of the recent-agreement window.

    A point is taken when the count of agreement pairs crosses a multiple of `every`. When the list
    is full it keeps every other point and doubles `every`, so it always spans the whole run with at
    most `capacity` points, at a cost that falls as the run grows.
    """

    def __init__(self, every: int, capacity: int = DEFAULT_CAPACITY) -> None:
        if every <= 0 or capacity < 2:
            raise ValueError("the agreement series needs a positive step and room for two points")
        self.every = every
        self.capacity = capacity
        self.points: list[list[float | int | None]] = []
        self._next = every

    def observe(self, pairs: int, now_ms: float | None, window_table: Callable[[], Table]) -> None:
        """Called after each batch with the agreement pairs so far; samples the window when a step is crossed."""
        if pairs < self._next:
            return
        figures = summary(window_table())
        self.points.append([now_ms, pairs, figures["ari"], figures["nmi"], figures["matched_accuracy"]])
        if len(self.points) >= self.capacity:
            self.points = self.points[1::2]
            self.every *= 2
        self._next = (pairs // self.every + 1) * self.every

    def merge(self, other: AgreementSeries, bucket_ms: float = MERGE_BUCKET_MS) -> None:
        """Fold in another shard's series: by time bucket, the pairs of each shard so far add up and the
        window's figures are averaged (each shard's window holds its own partitions' recent pairs)."""
        tagged = sorted([(point, 0) for point in self.points] + [(point, 1) for point in other.points],
                        key=lambda item: -1.0 if item[0][0] is None else float(item[0][0]))
        latest = [0, 0]
        merged: list[list[float | int | None]] = []
        bucket: list[list[float | int | None]] = []
        for at, (point, source) in enumerate(tagged):
            latest[source] = int(point[1] or 0)
            bucket.append(point)
            following = tagged[at + 1][0][0] if at + 1 < len(tagged) else None
            if following is None or _bucket(following, bucket_ms) != _bucket(point[0], bucket_ms):
                merged.append([point[0], sum(latest), *(_mean([p[i] for p in bucket]) for i in (2, 3, 4))])
                bucket = []
        self.every = max(self.every, other.every)
        while len(merged) >= self.capacity:
            merged = merged[1::2]
            self.every *= 2
        self.points = merged
        self._next = max(self._next, other._next)

    def section(self) -> list[dict[str, Any]]:
        return [{"at_ms": at_ms, "pairs": pairs, "ari": ari, "nmi": nmi, "matched_accuracy": accuracy}
                for at_ms, pairs, ari, nmi, accuracy in self.points]

    def to_wire(self) -> dict[str, Any]:
        return {"every": self.every, "capacity": self.capacity, "next": self._next, "points": self.points}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> AgreementSeries:
        series = cls(int(raw["every"]), int(raw["capacity"]))
        series._next = int(raw["next"])
        series.points = [list(point) for point in raw["points"]]
        return series

    @classmethod
    def starting_at(cls, every: int, pairs: int) -> AgreementSeries:
        """An empty series for a state saved before series existed: its first point comes at the next step."""
        series = cls(every)
        series._next = (pairs // every + 1) * every
        return series


def _bucket(at_ms: float | int | None, bucket_ms: float) -> float | None:
    return None if at_ms is None else float(at_ms) // bucket_ms


def _mean(values: list[float | int | None]) -> float | None:
    known = [float(value) for value in values if value is not None]
    return sum(known) / len(known) if known else None
