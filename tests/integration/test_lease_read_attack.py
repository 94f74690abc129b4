"""Attacks on reads bounded by the lease (RedisControl.read_window_ms), on a real redis-server: pauses right
after a renewal, the lease keeper renewing at the same time, partitions, a released lease, the pending re-read."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.embedded_redis import EmbeddedRedis
from harness.partitions import Partition
from harness.producer.publisher import publish_signals
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport import control as control_module
from harness.transport import keys
from harness.transport.base import CommitBatch
from harness.transport.control import RedisControl
from harness.transport.errors import TransportError, TransportFenced
from harness.transport.streams import StreamTransport
from tests.integration.test_fenced_read import fill
from tests.integration.test_stream_transport import small_signals
from tests.support.processes import result_count, wait_for
from tests.unit.test_runtime import Labeller

WORKER = "attacked"
LEASE = keys.lease_key(WORKER)


def pending(client: redis.Redis) -> int:
    return int(client.xpending(keys.DEFAULT_INPUT_STREAM, WORKER)["pending"])


class PausableClock:
    """control.py's `time` module with a monotonic clock that a test moves forward: a pause of the process."""

    def __init__(self) -> None:
        self.paused_s = 0.0

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(monotonic=lambda: time.monotonic() + self.paused_s, time=time.time,
                                     sleep=time.sleep)


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> PausableClock:
    paused = PausableClock()
    monkeypatch.setattr(control_module, "time", paused.module())
    return paused


@pytest.fixture()
def stale(redis_url: str) -> Iterator[StreamTransport]:
    transport = StreamTransport(redis.Redis.from_url(redis_url), WORKER)
    yield transport
    transport.close()


def taken_over(client: redis.Redis, redis_url: str) -> None:
    """The paused copy's lease expired and the new owner acquired it (on its own client)."""
    client.delete(LEASE)
    owner = RedisControl(redis.Redis.from_url(redis_url), WORKER)
    assert owner.acquire_lease(ttl_s=30.0, wait_s=0.0) > 0


def pause_after_renewals(control: RedisControl, clock: PausableClock, client: redis.Redis, redis_url: str) -> None:
    """The next renewal is accepted, then the process pauses past its TTL (before it looks at the clock
    again), and meanwhile the new owner takes the lease over."""
    renew = control.renew_lease

    def renewed_then_paused() -> bool:
        kept = renew()
        clock.paused_s += 5.0
        taken_over(client, redis_url)
        return kept
    control.renew_lease = renewed_then_paused  # type: ignore[method-assign]


@pytest.mark.parametrize("block_ms", [0, 100])
def test_a_copy_paused_right_after_its_renewal_sends_no_read(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport, clock: PausableClock,
        block_ms: int) -> None:
    fill(redis_client, 5)
    stale.acquire_lease(ttl_s=1.0, wait_s=0.0)
    clock.paused_s = 0.9  # the lease nears its end: the read renews it first
    pause_after_renewals(stale._control, clock, redis_client, redis_url)
    with pytest.raises(TransportError):
        stale.read(10, block_ms)
    assert pending(redis_client) == 0, "the read went out after the lease had ended: it claimed entries"


def test_a_read_sent_ahead_is_not_sent_when_the_lease_ended_during_its_renewal(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport, clock: PausableClock) -> None:
    fill(redis_client, 30)
    stale.acquire_lease(ttl_s=1.0, wait_s=0.0)
    assert len(stale.read(10, 0)) == 10, "a full batch, read while the lease holds"
    stale.take_read_ahead()
    assert pending(redis_client) == 20
    clock.paused_s = 0.9
    pause_after_renewals(stale._control, clock, redis_client, redis_url)
    with pytest.raises(TransportError):
        stale._read_ahead(10, 10)
    assert not stale.take_read_ahead()
    assert pending(redis_client) == 20


def test_the_lease_in_redis_outlives_every_window_while_the_keeper_renews_at_the_same_time(
        redis_client: redis.Redis, redis_url: str) -> None:
    control = RedisControl(redis.Redis.from_url(redis_url), WORKER)
    control.acquire_lease(ttl_s=4.0, wait_s=0.0)
    stop, failures = threading.Event(), []

    def keeper() -> None:
        while not stop.is_set():
            if not control.renew_lease():
                failures.append("a renewal was refused")
    thread = threading.Thread(target=keeper)
    thread.start()
    try:
        for block_ms in [60_000, 3_500, 3_000, 2_900, 100, 0] * 40:
            window = control.read_window_ms(block_ms)
            left = redis_client.pttl(LEASE)  # measured after the window was granted: it can only be shorter
            assert 0 <= window <= min(block_ms, 3_000) and left >= window, (block_ms, window, left)
    finally:
        stop.set()
        thread.join()
    assert not failures


def counted_renewals(transport: StreamTransport) -> list[int]:
    renewals: list[int] = []
    renew = transport._control.renew_lease

    def counted() -> bool:
        renewals.append(1)
        return renew()
    transport._control.renew_lease = counted  # type: ignore[method-assign]
    return renewals


def test_an_idle_read_has_redis_check_the_lease_and_a_read_after_a_commit_does_not(
        redis_client: redis.Redis, stale: StreamTransport) -> None:
    stale.acquire_lease(ttl_s=30.0, wait_s=0.0)
    renewals = counted_renewals(stale)
    for _ in range(5):  # idle: nothing fenced ran between two reads
        assert stale.read(10, 20) == []
    assert len(renewals) == 5, "each idle read is preceded by a renewal (a check by Redis itself)"
    entries = fill(redis_client, 100)
    got = []
    while len(got) < 100:  # a backlog: each read (and its read sent ahead) follows a commit
        deliveries = stale.read(10, 0)
        stale.commit(CommitBatch(deliveries, [(d.entry_id, b"r") for d in deliveries]))
        got += [d.entry_id for d in deliveries]
    assert got == entries
    # Only the first read of the backlog and the read it sent ahead (no commit between them) renewed.
    assert len(renewals) == 5 + 2


def test_a_wait_longer_than_the_ttl_is_cut_to_the_lease_and_never_spins(
        redis_client: redis.Redis, stale: StreamTransport) -> None:
    stale.acquire_lease(ttl_s=0.3, wait_s=0.0)
    for _ in range(5):
        window = stale._control.read_window_ms(1_000)
        assert 0 < window <= 300 - 75, "a blocking read still blocks (no busy loop), and ends with the lease"
    started = time.monotonic()
    assert stale.read(10, 1_000) == []
    assert time.monotonic() - started >= 0.1, "the read blocked instead of returning at once"
    assert redis_client.get(LEASE) == stale._control.lease_value.encode()


def test_each_partition_reads_under_its_own_lease(redis_client: redis.Redis, redis_url: str) -> None:
    partitions = [Partition(index, 2) for index in range(2)]
    transports = [StreamTransport(redis.Redis.from_url(redis_url), WORKER, partition=p) for p in partitions]
    try:
        streams = [keys.scoped(keys.DEFAULT_INPUT_STREAM, p) for p in partitions]
        entries = [fill(redis_client, 3, stream) for stream in streams]
        for transport in transports:
            transport.acquire_lease(ttl_s=30.0, wait_s=0.0)
            transport._control._lease_sent_at -= 30.0  # both leases near their end, as after a pause
        redis_client.set(keys.scoped(LEASE, partitions[0]), "99 other-host 1")  # partition 0 moved on
        with pytest.raises(TransportFenced):
            transports[0].read(10, 0)
        assert [d.entry_id for d in transports[1].read(10, 0)] == entries[1]
        assert int(redis_client.xpending(streams[0], WORKER)["pending"]) == 0
    finally:
        for transport in transports:
            transport.close()


def test_a_released_lease_is_not_renewed_by_a_read(redis_client: redis.Redis, stale: StreamTransport) -> None:
    """Released (the runtime's exit): the copy holds no lease, so nothing bounds or renews its reads."""
    stale.acquire_lease(ttl_s=1.0, wait_s=0.0)
    stale.release_lease()
    assert not redis_client.exists(LEASE)
    assert stale._control.read_window_ms(5_000) == 5_000
    assert stale.read(10, 0) == []
    assert not redis_client.exists(LEASE), "a read after release must not take the lease back"


def test_the_pending_re_read_of_a_copy_that_lost_its_lease_claims_nothing_new(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport) -> None:
    first = fill(redis_client, 4)
    stale.acquire_lease(ttl_s=30.0, wait_s=0.0)
    assert [d.entry_id for d in stale.read(4, 0)] == first
    stale.reset()  # as after a store error: its own pending entries are read again from id 0
    taken_over(redis_client, redis_url)
    fill(redis_client, 4)
    stale._control._lease_sent_at -= 30.0  # and its lease time ran out meanwhile
    before = redis_client.xinfo_groups(keys.DEFAULT_INPUT_STREAM)[0]["last-delivered-id"]
    again = []
    with pytest.raises(TransportFenced):
        while True:
            again += [d.entry_id for d in stale.read(10, 0)]
    assert again == first, "its own pending entries, one at a time, then nothing new"
    assert redis_client.xinfo_groups(keys.DEFAULT_INPUT_STREAM)[0]["last-delivered-id"] == before
    assert [text["message_id"].decode() for text in redis_client.xpending_range(
        keys.DEFAULT_INPUT_STREAM, WORKER, "-", "+", 100)] == first


def test_a_worker_whose_redis_goes_away_past_its_ttl_backs_off_then_reads_under_its_lease_again(
        tmp_path: Path) -> None:
    """Renewals before reads fail while Redis is away: the runtime backs off (no spin) and, once Redis is
    back, the read re-creates the lease that expired with no one taking it, and carries on."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = EmbeddedRedis(persistence=True, folder=str(folder)).start()
    client = redis.Redis.from_url(server.url)
    transport = StreamTransport(redis.Redis.from_url(server.url), WORKER)
    runtime = WorkerRuntime(transport, Labeller(), RuntimeSettings(worker_name=WORKER, batch_size=10, block_ms=100,
                                                                   lease_ttl_s=1.0))
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        publish_signals(client, small_signals(30, prefix="a"), keys.DEFAULT_INPUT_STREAM)
        wait_for(lambda: result_count(client, WORKER) >= 30, 30, "first results")
        held = client.get(LEASE)
        client.close()
        server.stop()
        away_since = time.monotonic()
        wait_for(lambda: time.monotonic() - away_since > 2.0 and runtime.stats.infrastructure_retries >= 3, 30,
                 "a few retries while Redis is away past the TTL")
        retries = runtime.stats.infrastructure_retries
        server = EmbeddedRedis(persistence=True, folder=str(folder)).start()
        client = redis.Redis.from_url(server.url)
        publish_signals(client, small_signals(30, prefix="b"), keys.DEFAULT_INPUT_STREAM)
        wait_for(lambda: result_count(client, WORKER) >= 60, 60, "results after Redis came back")
        assert retries < 100, f"{retries} retries in about two seconds: the read loop spins"
        assert thread.is_alive() and not runtime.lease_lost
        assert client.get(LEASE) == held, "the same lease, re-created"
        assert int(client.xpending(keys.DEFAULT_INPUT_STREAM, WORKER)["pending"]) == 0
    finally:
        runtime.request_stop()
        thread.join(30)
        transport.close()
        server.stop()


def test_a_copy_paused_while_another_took_its_lease_and_released_it_does_not_take_it_back(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport) -> None:
    """The lease is missing when the paused copy wakes, yet someone held it meanwhile (and re-read the pending
    entries, and moved the model state on): re-creating it would hand the input back to a stale copy."""
    fill(redis_client, 5)
    stale.acquire_lease(ttl_s=30.0, wait_s=0.0)
    taken_over(redis_client, redis_url)
    redis_client.delete(LEASE)  # the new owner exited cleanly: it released the lease
    stale._control._lease_sent_at -= 30.0  # the paused copy wakes
    with pytest.raises(TransportFenced):
        stale.read(10, 0)
    assert not redis_client.exists(LEASE) and pending(redis_client) == 0


def test_a_copy_frozen_with_its_clock_claims_nothing_after_the_takeover(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport, clock: PausableClock) -> None:
    fill(redis_client, 5)
    stale.acquire_lease(ttl_s=1.0, wait_s=0.0)
    frozen_at = time.monotonic()
    wait_for(lambda: not redis_client.exists(LEASE), 10, "the frozen copy's lease to expire")
    taken_over(redis_client, redis_url)
    clock.paused_s = frozen_at - time.monotonic()  # its clock stood still for as long as it was frozen
    with pytest.raises(TransportFenced):
        stale.read(10, 0)
    assert pending(redis_client) == 0


def test_a_copy_frozen_with_its_clock_while_idle_after_a_commit_claims_nothing_after_the_takeover(
        redis_client: redis.Redis, redis_url: str, stale: StreamTransport, clock: PausableClock) -> None:
    first = fill(redis_client, 3)
    stale.acquire_lease(ttl_s=1.0, wait_s=0.0)
    deliveries = stale.read(10, 0)
    stale.commit(CommitBatch(deliveries, [(d.entry_id, b"r") for d in deliveries]))
    assert [d.entry_id for d in deliveries] == first
    assert stale.read(10, 20) == [], "idle"
    frozen_at = time.monotonic()
    wait_for(lambda: not redis_client.exists(LEASE), 10, "the frozen copy's lease to expire")
    taken_over(redis_client, redis_url)
    fill(redis_client, 5)
    clock.paused_s = frozen_at - time.monotonic()  # its clock stood still for as long as it was frozen
    with pytest.raises(TransportFenced):
        stale.read(10, 0)
    assert pending(redis_client) == 0
