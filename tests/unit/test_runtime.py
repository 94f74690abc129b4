"""The worker runtime over the in-memory transport: crashes, poison, dedupe, store errors, order, leases."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from harness.clustering import Assignment
from harness.contracts import SignalMeta, SignalReceived, decode_clustered, encode_signal
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport.errors import LeaseHeld, TransportFenced, TransportOutOfMemory, TransportUnavailable
from harness.transport.memory import InMemoryBroker, InMemoryTransport

WORKER = "w"


def payload(signal_id: str, device: str = "d1", level: float = 230.0) -> bytes:
    samples = np.full(64, level, dtype=np.float32)
    return encode_signal(SignalReceived(signal_id, SignalMeta(device), 1000.0, 1.7e9, samples))


class Labeller:
    """Labels each signal by device; counts what it was shown; can fail on chosen ids."""

    model_version = "labeller-1"
    replay_safe = True  # it raises before learning anything

    def __init__(self, fail_on: set[str] | None = None, fail_with: Exception | None = None) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on or set()
        self.fail_with = fail_with

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        if any(s.signal_id in self.fail_on for s in signals):
            raise ValueError("cannot cluster this one")
        self.seen += [s.signal_id for s in signals]
        return [Assignment.clustered(f"dev:{s.meta.device_id}") for s in signals]


class Crash(BaseException):
    """Stands for a process death: not an Exception, so nothing in the runtime catches it."""


class Killer(Labeller):
    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        if any(s.signal_id == self.poison for s in signals):
            raise Crash
        return super().assign_batch(signals)


def runtime(broker: InMemoryBroker, algorithm: Labeller, **settings: object) -> WorkerRuntime:
    options: dict[str, object] = {"batch_size": 50, "lease_ttl_s": None, **settings}
    return WorkerRuntime(InMemoryTransport(broker, WORKER), algorithm,
                         RuntimeSettings(worker_name=WORKER, **options))  # type: ignore[arg-type]


def drain(worker: WorkerRuntime) -> None:
    while worker.step():
        pass


def results(broker: InMemoryBroker) -> list[tuple[str, str, str | None, str | None]]:
    decoded = [decode_clustered(p) for _, p in broker.results.get(WORKER, [])]
    return [(r.signal_id, r.outcome, r.label, r.error_type) for r in decoded]


def feed(broker: InMemoryBroker, count: int, prefix: str = "s") -> list[str]:
    return [broker.append("input", payload(f"{prefix}{i}")) for i in range(count)]


def test_every_entry_gets_one_result_in_input_order_and_is_acked() -> None:
    broker = InMemoryBroker()
    entries = feed(broker, 120)
    drain(runtime(broker, Labeller()))
    committed = [entry for entry, _ in broker.results[WORKER]]
    assert committed == entries
    assert broker.pending("input", WORKER) == {}


def test_a_restarted_worker_resumes_from_its_pending_entries_and_marks_them_redelivered() -> None:
    broker = InMemoryBroker()
    feed(broker, 30)
    with pytest.raises(Crash):
        drain(runtime(broker, Killer(poison="s0")))  # dies with the whole first batch in hand
    assert len(broker.pending("input", WORKER)) == 30 and not broker.results.get(WORKER)
    drain(runtime(broker, Labeller()))
    decoded = [decode_clustered(p) for _, p in broker.results[WORKER]]
    assert [r.signal_id for r in decoded] == [f"s{i}" for i in range(30)]
    assert all(r.redelivered for r in decoded)
    assert broker.pending("input", WORKER) == {}


def test_a_message_that_kills_the_process_is_isolated_and_dead_lettered_alone() -> None:
    broker = InMemoryBroker()
    feed(broker, 20)
    broker.append("input", payload("poison"))
    feed(broker, 20, prefix="t")
    crashes = 0
    while True:
        try:
            drain(runtime(broker, Killer(poison="poison"), max_deliveries=3))
            break
        except Crash:
            crashes += 1
            assert crashes < 10, "the poison message must end up dead-lettered"
    outcomes = results(broker)
    assert len(outcomes) == 41 and len({sid for sid, *_ in outcomes}) == 41
    assert [letter.signal_id for letter in broker.dead_letters[WORKER]] == ["poison"]
    assert [o for o in outcomes if o[1] != "clustered"] == [("poison", "error", None, "max_deliveries")]


def test_a_duplicate_id_on_another_entry_is_rejected_but_a_redelivery_is_not() -> None:
    broker = InMemoryBroker()
    broker.append("input", payload("same"))
    broker.append("input", payload("same", device="d2"))
    drain(runtime(broker, Labeller()))
    assert results(broker) == [("same", "clustered", "dev:d1", None), ("same", "error", None, "duplicate_id")]
    assert broker.dead_letters[WORKER][0].reason == "duplicate_id"


def test_a_failing_batch_is_retried_one_signal_at_a_time() -> None:
    broker = InMemoryBroker()
    feed(broker, 5)
    drain(runtime(broker, Labeller(fail_on={"s2"})))
    outcomes = results(broker)
    assert [o[1] for o in outcomes] == ["clustered", "clustered", "error", "clustered", "clustered"]
    assert outcomes[2][3] == "ValueError"


@pytest.mark.parametrize("operation", ["read", "first_sightings", "commit"])
def test_a_store_error_publishes_nothing_then_the_batch_lands_once_the_store_recovers(operation: str) -> None:
    broker = InMemoryBroker()
    broker.roles.update(primary=WORKER, epoch="1", watermark="0-0")
    feed(broker, 10)
    broker.fail_next(operation, TransportOutOfMemory("full"), times=3)
    worker = runtime(broker, Labeller())
    drain(worker)
    assert [o[1] for o in results(broker)] == ["clustered"] * 10
    assert len(broker.production) == 10 and not broker.dead_letters.get(WORKER)
    assert worker.stats.infrastructure_retries == 3


def test_an_infrastructure_error_inside_the_algorithm_is_retried_not_published_as_a_model_error() -> None:
    broker = InMemoryBroker()
    feed(broker, 4)
    algorithm = Labeller(fail_with=TransportOutOfMemory("OOM command not allowed"))
    drain(runtime(broker, algorithm))
    assert [o[1] for o in results(broker)] == ["clustered"] * 4


def test_a_stop_while_the_store_is_down_leaves_the_batch_pending_and_publishes_nothing() -> None:
    broker = InMemoryBroker()
    feed(broker, 3)
    broker.fail_next("commit", TransportUnavailable("down"), times=1000)
    worker = runtime(broker, Labeller())
    stopper = threading.Timer(0.3, worker.request_stop)
    stopper.start()
    worker.run()
    stopper.join()
    assert not broker.results.get(WORKER) and len(broker.pending("input", WORKER)) == 3


def test_a_commit_retried_after_its_reply_was_lost_writes_nothing_twice() -> None:
    broker = InMemoryBroker()
    feed(broker, 3)
    transport = InMemoryTransport(broker, WORKER)
    deliveries = transport.read(10, 0)
    from harness.transport.base import CommitBatch

    batch = CommitBatch(deliveries, [(d.entry_id, b"r") for d in deliveries])
    first, again = transport.commit(batch), transport.commit(batch)
    assert not first.already_committed and again.already_committed
    assert len(broker.results[WORKER]) == 3


def test_a_second_copy_of_a_worker_is_refused_while_the_first_holds_the_lease() -> None:
    broker = InMemoryBroker()
    first = InMemoryTransport(broker, WORKER)
    first.acquire_lease(ttl_s=5.0, wait_s=0.0)
    with pytest.raises(LeaseHeld, match="already running"):
        InMemoryTransport(broker, WORKER).acquire_lease(ttl_s=5.0, wait_s=0.1)


def test_a_worker_that_lost_its_lease_cannot_commit() -> None:
    broker = InMemoryBroker()
    feed(broker, 2)
    stale = InMemoryTransport(broker, WORKER)
    stale.acquire_lease(ttl_s=0.05, wait_s=0.0)
    deliveries = stale.read(10, 0)
    InMemoryTransport(broker, WORKER).acquire_lease(ttl_s=5.0, wait_s=1.0)  # waits out the stale lease
    from harness.transport.base import CommitBatch

    with pytest.raises(TransportFenced):
        stale.commit(CommitBatch(deliveries, [(d.entry_id, b"r") for d in deliveries]))
    assert not broker.results.get(WORKER)


def test_a_lease_taken_and_released_by_another_copy_is_not_renewed_by_the_first() -> None:
    broker = InMemoryBroker()
    stale = InMemoryTransport(broker, WORKER)
    stale.acquire_lease(ttl_s=0.05, wait_s=0.0)
    assert stale.renew_lease(), "expired and untaken: re-established"
    other = InMemoryTransport(broker, WORKER)
    other.acquire_lease(ttl_s=5.0, wait_s=1.0)  # waits out the first lease
    other.release_lease()
    assert not stale.renew_lease(), "the other copy moved on since: the first must not take the lease back"


def test_the_runtime_holds_its_lease_while_running_and_releases_it_on_exit() -> None:
    broker = InMemoryBroker()
    feed(broker, 5)
    worker = runtime(broker, Labeller(), lease_ttl_s=1.0, exit_when_idle_s=0.0, block_ms=1)
    worker.run()
    assert worker.stats.processed == 5 and WORKER not in broker.leases
    assert broker.heartbeats[WORKER].state == "stopped"


def test_a_drain_request_stops_the_loop_after_the_batch_in_hand() -> None:
    broker = InMemoryBroker()
    feed(broker, 5)
    broker.drain.add(WORKER)
    worker = runtime(broker, Labeller(), exit_when_idle_s=0.0, block_ms=1)
    stopper = threading.Timer(0.3, worker.request_stop)  # it idles while drained; stop it from outside
    stopper.start()
    worker.run()
    stopper.join()
    assert worker.stats.processed == 0 and broker.heartbeats[WORKER].state == "stopped"


def test_the_primary_publishes_each_entry_to_production_once() -> None:
    broker = InMemoryBroker()
    broker.roles.update(primary=WORKER, epoch="3", watermark="0-0")
    feed(broker, 7)
    drain(runtime(broker, Labeller()))
    assert [p.epoch for p in broker.production] == [3] * 7
    assert len({p.entry_id for p in broker.production}) == 7
