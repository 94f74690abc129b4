"""The worker's Prometheus metrics over the in-memory transport, read back from a fresh registry per test."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from harness.contracts import OUTCOMES
from harness.metrics.worker import DEAD_LETTER_REASONS, STORE_OPERATIONS, WorkerMetrics
from harness.runtime.pipeline import BatchPlan
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport.base import CommitBatch, CommitOutcome
from harness.transport.errors import TransportUnavailable
from harness.transport.memory import InMemoryBroker, InMemoryTransport
from tests.unit.test_runtime import WORKER, Labeller, payload

NOW_MS = 1_700_000_000_000.0  # the store's clock in these tests: fixed, so latencies are known


@pytest.fixture()
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, {"worker": WORKER, **labels})
    assert found is not None, f"no sample {name}{labels}"
    return found


def observed(broker: InMemoryBroker, registry: CollectorRegistry, **settings: object) -> WorkerRuntime:
    options: dict[str, object] = {"batch_size": 50, "lease_ttl_s": None, **settings}
    return WorkerRuntime(InMemoryTransport(broker, WORKER), Labeller(),
                         RuntimeSettings(worker_name=WORKER, **options),  # type: ignore[arg-type]
                         WorkerMetrics(WORKER, Labeller.model_version, registry))


def test_every_known_series_exists_before_the_first_event(registry: CollectorRegistry) -> None:
    WorkerMetrics(WORKER, "m-1", registry)
    for outcome in OUTCOMES:
        assert value(registry, "harness_worker_signals_total", outcome=outcome) == 0
    for reason in DEAD_LETTER_REASONS:
        assert value(registry, "harness_worker_dead_letters_total", reason=reason) == 0
    for during in STORE_OPERATIONS:
        assert value(registry, "harness_worker_store_errors_total", during=during) == 0
    for gauge in ("harness_worker_pending_entries", "harness_worker_lease_held", "harness_worker_primary",
                  "harness_worker_epoch", "harness_worker_redelivered_total",
                  "harness_worker_end_to_end_latency_seconds_count", "harness_worker_batch_duration_seconds_count"):
        assert value(registry, gauge) == 0
    assert math.isnan(value(registry, "harness_worker_lag_entries"))  # unknown until the first heartbeat
    assert value(registry, "harness_worker_info", model_version="m-1") == 1


def test_committed_batches_count_signals_by_outcome_and_dead_letters_by_reason(registry: CollectorRegistry) -> None:
    broker = InMemoryBroker()
    for i in range(10):
        broker.append("input", payload(f"s{i}"))
    broker.append("input", b"")  # empty_message
    broker.append("input", payload("s3"))  # duplicate_id
    worker = observed(broker, registry, batch_size=5)
    while worker.step():
        pass
    assert value(registry, "harness_worker_signals_total", outcome="clustered") == 10
    assert value(registry, "harness_worker_signals_total", outcome="error") == 2
    assert value(registry, "harness_worker_signals_total", outcome="unclustered") == 0
    assert value(registry, "harness_worker_dead_letters_total", reason="empty_message") == 1
    assert value(registry, "harness_worker_dead_letters_total", reason="duplicate_id") == 1
    assert value(registry, "harness_worker_batch_duration_seconds_count") == 3  # 12 entries, 5 a batch
    assert value(registry, "harness_worker_end_to_end_latency_seconds_count") == 12


def test_end_to_end_latency_runs_from_entering_the_input_to_the_commit_on_the_store_clock(
        registry: CollectorRegistry) -> None:
    broker = InMemoryBroker(clock_ms=lambda: NOW_MS)
    for i in range(4):
        broker.append("input", payload(f"s{i}"), entered_at_ms=NOW_MS - 3_000.0)
    observed(broker, registry).step()
    # 3 s and a little (the worker's clock runs on from its last sync with the store's)
    assert value(registry, "harness_worker_end_to_end_latency_seconds_bucket", le="2.5") == 0
    assert value(registry, "harness_worker_end_to_end_latency_seconds_bucket", le="5.0") == 4
    assert 12.0 <= value(registry, "harness_worker_end_to_end_latency_seconds_sum") < 13.0


def test_role_and_epoch_follow_the_last_commit(registry: CollectorRegistry) -> None:
    broker = InMemoryBroker()
    broker.roles.update(primary=WORKER, epoch="3", watermark="0-0")
    broker.append("input", payload("s0"))
    worker = observed(broker, registry)
    worker.step()
    assert (value(registry, "harness_worker_primary"), value(registry, "harness_worker_epoch")) == (1, 3)
    broker.roles.update(primary="someone-else", epoch="4")
    broker.append("input", payload("s1"))
    worker.step()
    assert (value(registry, "harness_worker_primary"), value(registry, "harness_worker_epoch")) == (0, 4)


def test_a_store_error_is_counted_by_what_failed_and_its_batch_once(registry: CollectorRegistry) -> None:
    broker = InMemoryBroker()
    broker.append("input", payload("s0"))
    broker.fail_next("commit", TransportUnavailable("redis unavailable: down"), times=2)
    observed(broker, registry).step()
    assert value(registry, "harness_worker_store_errors_total", during="commit") == 2
    assert value(registry, "harness_worker_store_errors_total", during="read") == 0
    assert value(registry, "harness_worker_signals_total", outcome="clustered") == 1


def test_a_retried_commit_that_had_landed_counts_nothing(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics(WORKER, "m-1", registry)
    plan = BatchPlan(CommitBatch((), ()), (), (), {"clustered": 5})
    metrics.batch_committed(plan, CommitOutcome(True, 1, 5, already_committed=True), 0.1, NOW_MS)
    assert value(registry, "harness_worker_signals_total", outcome="clustered") == 0
    assert value(registry, "harness_worker_batch_duration_seconds_count") == 0


def test_the_heartbeat_reads_the_backlog_of_the_consumer_group(registry: CollectorRegistry) -> None:
    broker = InMemoryBroker()
    for i in range(30):
        broker.append("input", payload(f"s{i}"))
    transport = InMemoryTransport(broker, WORKER)
    metrics = WorkerMetrics(WORKER, "m-1", registry)

    def backlog() -> tuple[float, float]:
        return value(registry, "harness_worker_lag_entries"), value(registry, "harness_worker_pending_entries")

    metrics.heartbeat(transport.backlog)
    assert backlog() == (30, 0)
    transport.read(10, 0)  # read, not acked yet
    metrics.heartbeat(transport.backlog)
    assert backlog() == (30, 10)
    metrics.heartbeat(lambda: None)  # the store did not answer: the figures stand
    assert value(registry, "harness_worker_lag_entries") == 30
    assert value(registry, "harness_worker_last_heartbeat_timestamp_seconds") > 0


class LeaseSpy(WorkerMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(WORKER, "m-1", registry)
        self.history: list[tuple[bool, float]] = []
        self._registry = registry

    def lease_changed(self, held: bool) -> None:
        super().lease_changed(held)
        self.history.append((held, value(self._registry, "harness_worker_lease_held")))


def test_the_lease_gauge_is_1_while_the_worker_holds_its_lease(registry: CollectorRegistry) -> None:
    broker = InMemoryBroker()
    broker.append("input", payload("s0"))
    spy = LeaseSpy(registry)
    WorkerRuntime(InMemoryTransport(broker, WORKER), Labeller(),
                  RuntimeSettings(worker_name=WORKER, lease_ttl_s=5.0, exit_when_idle_s=0.0), spy).run()
    assert spy.history == [(True, 1.0), (False, 0.0)]
    assert value(registry, "harness_worker_signals_total", outcome="clustered") == 1
