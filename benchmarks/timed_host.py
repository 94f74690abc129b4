"""Hosts another worker spec (HARNESS_TIMED_SPEC) and adds up the time spent inside its `assign_batch`,
so a benchmark can tell an algorithm's own cost from the runtime's (decode, dedupe, encode)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.clustering import Assignment, ClusteringAlgorithm, WorkerContext
from harness.contracts import SignalReceived
from harness.runtime.loader import load_algorithm

SPEC_VARIABLE = "HARNESS_TIMED_SPEC"
SECONDS: dict[str, float] = {}  # worker name -> seconds inside assign_batch, since its creation


class TimedAlgorithm:
    def __init__(self, inner: ClusteringAlgorithm, name: str) -> None:
        self._inner = inner
        self._name = name
        self.model_version = inner.model_version
        self.replay_safe = getattr(inner, "replay_safe", False)
        SECONDS[name] = 0.0

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        started = time.perf_counter()
        try:
            return self._inner.assign_batch(signals)
        finally:
            SECONDS[self._name] += time.perf_counter() - started


def create(context: WorkerContext) -> TimedAlgorithm:
    return TimedAlgorithm(load_algorithm(context.env[SPEC_VARIABLE], context), context.worker_name)
