"""Backtest: legacy and a candidate run in-process on recorded signals, no Redis, compared as in production.

Both sides see the same batches in the same order and keep their state in memory, so agreement and
error figures are deterministic. Latency is each batch's real processing time (a signal "enters" when
its batch starts and is "published" when the batch ends), without the queueing of a live run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from harness.clustering import Assignment, ClusteringAlgorithm, WorkerContext
from harness.comparator.state import ComparatorState
from harness.contracts import SignalClustered, SignalReceived, clustered_to_dict
from harness.runtime.loader import load_algorithm

DEFAULT_BATCH_SIZE = 500  # as the worker runtime's default batch


class InProcessWorker:
    """A hosted algorithm with the runtime's batch semantics: a failing batch is retried one signal at a time."""

    def __init__(self, name: str, algorithm: ClusteringAlgorithm) -> None:
        self.name = name
        self.algorithm = algorithm
        self.seconds = 0.0  # total processing time

    @classmethod
    def load(cls, spec: str, env: Mapping[str, str] | None = None, name: str | None = None) -> InProcessWorker:
        """`legacy`, `candidate` or MODULE:FACTORY, with fresh in-memory state (no Redis)."""
        name = name or spec
        return cls(name, load_algorithm(spec, WorkerContext(name, None, dict(env or {}))))

    def assign(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        if not signals:
            return []
        started = time.perf_counter()
        try:
            assignments = self.algorithm.assign_batch(signals)
            if len(assignments) != len(signals):
                raise RuntimeError(f"{len(assignments)} assignments for {len(signals)} signals")
        except Exception:
            assignments = [self._assign_one(signal) for signal in signals]
        self.seconds += time.perf_counter() - started
        return assignments

    def _assign_one(self, signal: SignalReceived) -> Assignment:
        try:
            (assignment,) = self.algorithm.assign_batch([signal])
            return assignment
        except Exception as exc:
            return Assignment.error(type(exc).__name__, str(exc) or type(exc).__name__)


@dataclass(frozen=True)
class BacktestResult:
    report: dict[str, Any]  # harness.report/1
    signals: int
    seconds: float  # wall time of the whole run, both workers and the comparison
    legacy_seconds: float
    candidate_seconds: float

    @property
    def signals_per_s(self) -> float:
        return self.signals / self.seconds if self.seconds > 0 else 0.0


def run_backtest(
    signals: Iterable[SignalReceived],
    *,
    legacy: str = "legacy",
    candidate: str = "candidate",
    legacy_env: Mapping[str, str] | None = None,
    candidate_env: Mapping[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Run both workers over `signals` and return the comparison report; `on_batch(signals_done)` reports progress."""
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    sides = (InProcessWorker.load(legacy, legacy_env, "legacy"),
             InProcessWorker.load(candidate, candidate_env, "candidate"))
    state = ComparatorState(sides=("legacy", "candidate"))
    started = time.perf_counter()
    clock_ms = time.time() * 1000.0
    done = 0
    for batch in _batches(signals, batch_size):
        for side in sides:
            entered_ms = clock_ms + (time.perf_counter() - started) * 1000.0
            before = side.seconds
            assignments = side.assign(batch)
            batch_ms = (side.seconds - before) * 1000.0
            published_ms = entered_ms + batch_ms
            records = [_record(side, signal, assignment, entered_ms, published_ms, batch_ms / len(batch))
                       for signal, assignment in zip(batch, assignments, strict=True)]
            state.ingest(side.name, records, published_ms)
        done += len(batch)
        if on_batch is not None:
            on_batch(done)
    state.expire(float("inf"))  # nothing should wait for a partner: both sides answered every signal
    seconds = time.perf_counter() - started
    return BacktestResult(state.report(done), done, seconds, sides[0].seconds, sides[1].seconds)


def _batches(signals: Iterable[SignalReceived], size: int) -> Iterator[list[SignalReceived]]:
    iterator = iter(signals)
    while batch := list(islice(iterator, size)):
        yield batch


def _record(side: InProcessWorker, signal: SignalReceived, assignment: Assignment, entered_ms: float,
            published_ms: float, processing_ms: float) -> dict[str, Any]:
    return clustered_to_dict(SignalClustered(
        signal_id=signal.signal_id,
        worker=side.name,
        model_version=side.algorithm.model_version,
        outcome=assignment.outcome,
        label=assignment.label,
        is_new_cluster=assignment.is_new_cluster,
        entered_at_ms=entered_ms,
        published_at_ms=published_ms,
        processing_ms=processing_ms,
        device_id=signal.meta.device_id,
        true_kind=signal.meta.true_kind,
        error_type=assignment.error_type,
        error_message=assignment.error_message,
    ))


