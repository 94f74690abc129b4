"""A worker's Prometheus metrics, fed by the runtime's observer hooks (harness.runtime.stats.WorkerObserver).

Every series that can exist is created at start with its value (0, or NaN where nothing is known
yet), so a rate or an alert has a series to work on before the first event. docs/metrics.md lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from harness.contracts import DECODE_REASONS, OUTCOMES
from harness.runtime.pipeline import BatchPlan
from harness.runtime.stats import WorkerObserver
from harness.transport.base import Backlog, CommitOutcome

# Every reason a message is dead-lettered for: the decoder's, and the runtime's own two (pipeline.py).
DEAD_LETTER_REASONS = (*DECODE_REASONS, "duplicate_id", "max_deliveries")
# What the runtime was doing when the store failed (the `what` of WorkerRuntime._with_backoff).
STORE_OPERATIONS = ("read", "plan", "commit", "lease", "state", "control")
# Input to published: from milliseconds on a quiet stream to minutes behind a burst.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BATCH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics(WorkerObserver):
    def __init__(self, worker: str, model_version: str, registry: CollectorRegistry) -> None:
        self._worker = worker
        by_worker = ("worker",)
        Gauge("harness_worker_info", "Always 1: the worker's name and the model version it hosts.",
              ("worker", "model_version"), registry=registry).labels(worker, model_version).set(1)
        self._signals = _counter(registry, "harness_worker_signals_total", "Signals committed, by outcome.",
                                 worker, "outcome", OUTCOMES)
        self._letters = _counter(registry, "harness_worker_dead_letters_total", "Messages dead-lettered, by reason.",
                                 worker, "reason", DEAD_LETTER_REASONS)
        self._errors = _counter(registry, "harness_worker_store_errors_total", "Store errors the worker backed off "
                                "from (nothing was published for them), by what it was doing.", worker, "during",
                                STORE_OPERATIONS)
        self._redelivered = Counter("harness_worker_redelivered_total", "Entries read again after a crash or a "
                                    "lost connection.", by_worker, registry=registry).labels(worker)
        self._batch = Histogram("harness_worker_batch_duration_seconds", "From reading a batch to its commit.",
                                by_worker, buckets=BATCH_BUCKETS_S, registry=registry).labels(worker)
        self._latency = Histogram("harness_worker_end_to_end_latency_seconds", "From a signal entering the input "
                                  "to its result being published (store clock).", by_worker,
                                  buckets=LATENCY_BUCKETS_S, registry=registry).labels(worker)
        self._lag = _gauge(registry, "harness_worker_lag_entries", "Input entries this worker has not processed "
                           "yet: not read, plus read but not acked (NaN: the store cannot tell).", worker, math.nan)
        self._pending = _gauge(registry, "harness_worker_pending_entries", "Input entries read but not acked.",
                               worker, 0.0)
        self._lease = _gauge(registry, "harness_worker_lease_held", "1 while this copy holds the worker's lease.",
                             worker, 0.0)
        self._primary = _gauge(registry, "harness_worker_primary", "1 if this worker fed production at its last "
                               "commit.", worker, 0.0)
        self._epoch = _gauge(registry, "harness_worker_epoch", "The fencing epoch in force at its last commit.",
                             worker, 0.0)
        self._beat = _gauge(registry, "harness_worker_last_heartbeat_timestamp_seconds", "When the worker last "
                            "beat (Unix time, its own clock).", worker, 0.0)

    def batch_committed(self, plan: BatchPlan, outcome: CommitOutcome, seconds: float, published_ms: float) -> None:
        if outcome.already_committed:
            return  # a retried commit whose first attempt landed: counted then
        self._batch.observe(seconds)
        for name, count in plan.outcomes.items():
            self._signals.labels(self._worker, name).inc(count)
        for letter in plan.commit.dead_letters:
            self._letters.labels(self._worker, letter.reason).inc()
        redelivered = 0
        for delivery in plan.commit.acked:
            # As in the results: published_at_ms is never before entered_at_ms (ResultBuilder).
            self._latency.observe(max(published_ms - delivery.entered_at_ms, 0.0) / 1000.0)
            redelivered += delivery.redelivered
        if redelivered:
            self._redelivered.inc(redelivered)
        self._primary.set(1.0 if outcome.is_primary else 0.0)
        self._epoch.set(outcome.epoch)

    def store_error(self, during: str) -> None:
        self._errors.labels(self._worker, during).inc()

    def heartbeat(self, backlog: Callable[[], Backlog | None]) -> None:
        self._beat.set_to_current_time()
        figures = backlog()
        if figures is None:
            return  # the store did not answer: the last figures stand until the next beat
        self._lag.set(math.nan if figures.undelivered is None else figures.undelivered + figures.pending)
        self._pending.set(figures.pending)

    def lease_changed(self, held: bool) -> None:
        self._lease.set(1.0 if held else 0.0)


def _counter(registry: CollectorRegistry, name: str, documentation: str, worker: str, label: str,
             values: tuple[str, ...]) -> Counter:
    """A counter by worker and `label`, with a 0 for each of `values` (a value met later is added then)."""
    family = Counter(name, documentation, ("worker", label), registry=registry)
    for value in values:
        family.labels(worker, value)
    return family


def _gauge(registry: CollectorRegistry, name: str, documentation: str, worker: str, initial: float) -> Gauge:
    child = Gauge(name, documentation, ("worker",), registry=registry).labels(worker)
    child.set(initial)
    return child
