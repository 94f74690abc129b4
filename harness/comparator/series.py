"""Agreement over time: the window's metrics sampled every `every` pairs, in a bounded list that thins itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.comparator.agreement import Table, summary

DEFAULT_CAPACITY = 512  # points kept; when full, every other one goes and the step doubles


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
