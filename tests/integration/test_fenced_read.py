"""Reads are bounded by the lease, on a real redis-server: a copy of a worker paused past its TTL sends no read
once it wakes (plain, blocking or sent ahead) unless it can renew its lease, so it claims no entry behind the
new owner's back and every entry still gets its production result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import redis

from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport import keys
from harness.transport.base import CommitBatch, Delivery
from harness.transport.control import RedisControl
from harness.transport.errors import TransportFenced
from harness.transport.streams import StreamTransport
from tests.support.processes import wait_for
from tests.unit.test_runtime import Labeller

WORKER = "fenced"
LEASE = keys.lease_key(WORKER)
SHORT_TTL_S = 0.3  # the paused copy's lease, so that it expires within the test


def fill(client: redis.Redis, count: int, stream: str = keys.DEFAULT_INPUT_STREAM) -> list[str]:
    return [client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"}).decode() for _ in range(count)]


def pending(client: redis.Redis, stream: str = keys.DEFAULT_INPUT_STREAM) -> int:
    return int(client.xpending(stream, WORKER)["pending"])


def commit(transport: StreamTransport, deliveries: list[Delivery]) -> None:
    transport.commit(CommitBatch(deliveries, [(d.entry_id, b"result:" + d.entry_id.encode()) for d in deliveries]))


def drain(transport: StreamTransport, count: int = 10) -> list[str]:
    """Read and commit until nothing is left (the pending entries first, then the new ones)."""
    done: list[str] = []
    while deliveries := transport.read(count, 0) + transport.take_read_ahead():
        commit(transport, deliveries)
        done += [d.entry_id for d in deliveries]
    return done


def expire(client: redis.Redis) -> None:
    """The lease's holder is paused (no lease keeper runs in these tests) until its lease expires."""
    wait_for(lambda: not client.exists(LEASE), 10, "the paused copy's lease to expire")


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    return f"{redis_url}{'&' if '?' in redis_url else '?'}protocol={request.param}"


@pytest.fixture()
def leased(protocol_url: str) -> Iterator[StreamTransport]:
    """The worker's transport (on its own client, RESP2 or RESP3) holding the worker's lease."""
    transport = StreamTransport(redis.Redis.from_url(protocol_url), WORKER)
    transport.acquire_lease(ttl_s=30.0, wait_s=0.0)
    yield transport
    transport.close()


def test_a_copy_paused_past_its_ttl_claims_nothing_and_the_owner_answers_every_entry_in_production(
        redis_client: redis.Redis, protocol_url: str) -> None:
    stale_client, owner_client = redis.Redis.from_url(protocol_url), redis.Redis.from_url(protocol_url)
    stale, owner = StreamTransport(stale_client, WORKER), StreamTransport(owner_client, WORKER)
    try:
        first = fill(redis_client, 20)
        stale.acquire_lease(ttl_s=SHORT_TTL_S, wait_s=0.0)
        assert stale.claim_primary_if_unset()
        assert [d.entry_id for d in stale.read(10, 0)] == first[:10], "a full batch: the next is read ahead"
        expire(redis_client)
        assert owner.acquire_lease(ttl_s=30.0, wait_s=0.0) > 0
        assert drain(owner) == first, "the owner's takeover scan finds all the paused copy had claimed"
        later = fill(redis_client, 20)
        # The paused copy wakes up: whether its read sent ahead came back or not, it sends no read, since
        # its lease ran out and cannot be renewed, and it claims nothing.
        with pytest.raises(TransportFenced):
            stale.read(10, 0)
        with pytest.raises(TransportFenced):
            stale.read(10, 50)
        assert pending(redis_client) == 0, "a refused read leaves no entry pending for the shared consumer"
        assert drain(owner) == later
        assert owner.read(10, 20) == [], "nothing new: the owner's wait timed out"
    finally:
        stale.close()
        owner.close()
    published = [fields[b"entry"].decode() for _, fields in redis_client.xrange(keys.PRODUCTION_STREAM)]
    assert published == first + later, "every entry gets exactly one production result"


def test_a_read_never_waits_past_the_lease_less_a_margin(redis_client: redis.Redis) -> None:
    control = RedisControl(redis_client, WORKER)
    assert control.read_window_ms(60_000) == 60_000, "no lease: no bound"
    control.acquire_lease(ttl_s=2.0, wait_s=0.0)
    window = control.read_window_ms(60_000)
    assert 0 < window <= 2_000 - 500, "a quarter of a 2 s TTL is kept for the request's trip"
    assert control.read_window_ms(100) == 100


def run_in_thread(action: Callable[[], list[Delivery]]) -> tuple[threading.Thread, list[list[Delivery]]]:
    got: list[list[Delivery]] = []
    thread = threading.Thread(target=lambda: got.append(action()), daemon=True)
    thread.start()
    return thread, got


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])


def test_a_blocking_read_with_nothing_new_returns_as_soon_as_an_entry_arrives(
        redis_client: redis.Redis, leased: StreamTransport) -> None:
    fill(redis_client, 3)
    assert len(leased.read(10, 0)) == 3
    thread, got = run_in_thread(lambda: leased.read(10, 60_000))
    wait_for(lambda: blocked_clients(redis_client) == 1, 10, "the read waiting for a new entry")
    assert pending(redis_client) == 3, "the wait claims nothing"
    arrived = fill(redis_client, 1)
    thread.join(timeout=30)  # far less than the 60 s the read may wait: the entry ended it
    assert not thread.is_alive() and [d.entry_id for d in got[0]] == arrived
    assert pending(redis_client) == 4
    assert leased.read(10, 20) == [], "a wait that meets no entry ends empty"


def test_a_copy_without_a_lease_reads_as_before_whoever_holds_the_lease(redis_client: redis.Redis) -> None:
    entries = fill(redis_client, 25)
    redis_client.set(LEASE, "7 other-host 1")
    transport = StreamTransport(redis_client, WORKER)  # no lease acquired: an empty lease value, no fencing
    try:
        assert drain(transport) == entries
    finally:
        transport.close()


def test_a_lease_that_expired_with_no_one_taking_it_is_renewed_before_the_read(
        redis_client: redis.Redis, protocol_url: str) -> None:
    transport = StreamTransport(redis.Redis.from_url(protocol_url), WORKER)
    try:
        transport.acquire_lease(ttl_s=SHORT_TTL_S, wait_s=0.0)
        held = redis_client.get(LEASE)
        expire(redis_client)  # paused, or the store was away, longer than the TTL
        entries = fill(redis_client, 5)
        assert [d.entry_id for d in transport.read(10, 0)] == entries
        assert redis_client.get(LEASE) == held
    finally:
        transport.close()


def test_a_copy_whose_lease_was_taken_while_it_was_paused_exits_without_claiming(
        redis_client: redis.Redis, redis_url: str) -> None:
    """The whole runtime: it stops on the refused read, as on a refused commit."""
    fill(redis_client, 5)
    transport = StreamTransport(redis.Redis.from_url(redis_url), WORKER)
    transport.acquire_lease(ttl_s=SHORT_TTL_S, wait_s=0.0)
    expire(redis_client)
    redis_client.set(LEASE, "99 other-host 1")
    runtime = WorkerRuntime(transport, Labeller(), RuntimeSettings(worker_name=WORKER, batch_size=10, block_ms=10,
                                                                   lease_ttl_s=None))
    runtime.run()
    assert runtime.lease_lost
    assert pending(redis_client) == 0
