"""Attacks on the worker's hot path (6bac1dc) on a real redis-server: the read sent ahead, the windowed
duplicate-id hashes and the store clock they hang on. Each bug they showed is fixed."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.crc import key_slot

from harness.contracts import decode_clustered
from harness.partitions import all_partitions
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.security.acl import AclTarget, password_rule, user_rules
from harness.transport import clock as clock_module
from harness.transport import keys
from harness.transport.dedupe import SeenIds
from harness.transport.errors import TransportError
from harness.transport.prefetch import PrefetchingReader, reply_entries
from harness.transport.streams import StreamTransport
from tests.unit.test_runtime import Crash, Killer, Labeller, payload

WORKER = "attack"


def fill(client: redis.Redis, stream: str, count: int, poison_at: int | None = None) -> list[str]:
    """`count` well-formed signals on `stream` (ids s-0, s-1, ...; `poison_at` gets the id "poison")."""
    entries = []
    for index in range(count):
        signal_id = "poison" if index == poison_at else f"s-{index}"
        entries.append(client.xadd(stream, {keys.PAYLOAD_FIELD: payload(signal_id)}).decode())
    return entries


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def runtime_on(transport: StreamTransport, algorithm: Labeller, batch_size: int = 10) -> WorkerRuntime:
    return WorkerRuntime(transport, algorithm, RuntimeSettings(
        worker_name=WORKER, batch_size=batch_size, block_ms=1, lease_ttl_s=None, exit_when_idle_s=0.0))


def answered(client: redis.Redis, worker: str = WORKER) -> Counter[str | None]:
    """Input entry -> how many results the worker wrote for it."""
    return Counter(decode_clustered(fields[keys.PAYLOAD_FIELD]).input_entry_id
                   for _, fields in client.xrange(keys.results_stream(worker)))


class ServerClock:
    """The store's time (ms) as the test sets it; SeenIds reads it through its StoreClock."""

    def __init__(self, client: redis.Redis) -> None:
        seconds, micros = client.time()
        self.server_ms: float = seconds * 1000.0 + micros / 1000.0

    def __call__(self) -> float:
        return self.server_ms


# --- the read sent ahead ---------------------------------------------------------------------------------


def test_a_poison_message_is_dead_lettered_alone_though_a_read_ahead_was_in_flight(
        redis_client: redis.Redis) -> None:
    """A message that kills the process while the next batch was already delivered ahead: each restart
    reads the pending entries one at a time, so only the poison reaches max-deliveries."""
    stream = "attack:poison"
    entries = fill(redis_client, stream, 35, poison_at=5)
    restarts = 0
    while True:
        transport = StreamTransport(redis_client, WORKER, input_stream=stream)
        try:
            runtime_on(transport, Killer("poison")).run()
            break
        except Crash:
            restarts += 1
            assert restarts < 10, "the poison was never set aside"
        finally:
            transport.close()
    assert restarts == 5, "delivered once, then four times alone, dead-lettered on the sixth delivery"
    letters = redis_client.xrange(keys.dead_letter_stream(WORKER))
    assert [(fields[b"entry"].decode(), fields[b"reason"]) for _, fields in letters] == [
        (entries[5], b"max_deliveries")], "only the poison is blamed"
    assert answered(redis_client) == Counter(entries), "exactly one result per input entry"
    assert int(redis_client.xpending(stream, WORKER)["pending"]) == 0


def test_a_connection_lost_with_a_read_ahead_in_flight_loses_and_doubles_nothing(
        redis_client: redis.Redis) -> None:
    stream = "attack:killed"
    entries = fill(redis_client, stream, 30)
    transport = StreamTransport(redis_client, WORKER, input_stream=stream)
    try:
        in_hand = transport.read(10, 1)  # a full batch: 10 more were requested ahead
        assert int(redis_client.xpending(stream, WORKER)["pending"]) == 20
        redis_client.xack(stream, WORKER, *[delivery.entry_id for delivery in in_hand])  # its commit
        redis_client.client_kill_filter(_type="normal", skipme=True)  # a restart, as far as clients go
        with pytest.raises(TransportError):
            transport.read(10, 1)
        transport.reset()  # what the runtime does after a failed read
        seen = [delivery.entry_id for delivery in in_hand]
        while batch := transport.read(10, 1):
            seen += [delivery.entry_id for delivery in batch]
            redis_client.xack(stream, WORKER, *[delivery.entry_id for delivery in batch])
        seen += [delivery.entry_id for delivery in transport.take_read_ahead()]
    finally:
        transport.close()
    assert seen == entries, "every entry exactly once, in order"
    assert int(redis_client.xpending(stream, WORKER)["pending"]) == 0


def test_a_finished_runtime_gives_its_read_connection_back(redis_url: str, redis_client: redis.Redis) -> None:
    """Replicas share one client for every partition runtime and never close a transport (the client is
    shared): a runtime that ends must not hold a connection of the shared pool."""
    stream = "attack:leak"
    entries = fill(redis_client, stream, 25)
    name = f"leak-{secrets.token_hex(4)}"
    shared = redis.Redis.from_url(redis_url, client_name=name)
    try:
        for _ in range(3):  # a partition that moves away and back
            runtime_on(StreamTransport(shared, WORKER, input_stream=stream), Labeller()).run()
        assert answered(redis_client) == Counter(entries)
        shared.connection_pool.disconnect(inuse_connections=False)  # close every idle connection
        still_open = [c for c in redis_client.client_list() if c.get("name") == name]
        assert still_open == [], f"{len(still_open)} connection(s) still held by finished runtimes"
    finally:
        shared.close()


def test_a_read_ahead_reply_is_understood_over_resp3(redis_url: str, redis_client: redis.Redis) -> None:
    """The prefetching reader bypasses redis-py's reply parsing: a RESP3 map must read as a RESP2 list."""
    stream = "attack:resp3"
    entries = fill(redis_client, stream, 20)
    redis_client.xgroup_create(stream, WORKER, id="0")
    client = redis.Redis.from_url(redis_url, protocol=3)
    reader = PrefetchingReader(client)
    try:
        first = reader.read(WORKER, WORKER, [stream], 10, None)
        reader.send(WORKER, WORKER, [stream], 10, None)
        ahead = reader.read(WORKER, WORKER, [stream], 10, None)
        empty = reader.read(WORKER, WORKER, [stream], 10, None)
    finally:
        reader.drop()
        client.close()
    assert isinstance(first, dict), "a RESP3 map, not RESP2's list"
    got = StreamTransport._deliveries(first) + StreamTransport._deliveries(ahead)
    assert [d.entry_id for d in got] == entries
    assert [d.payload for d in got] == [payload(f"s-{index}") for index in range(20)]
    assert reply_entries(empty) == []


def test_a_stream_transport_reads_over_resp3(redis_url: str, redis_client: redis.Redis) -> None:
    stream = "attack:resp3-pending"
    entries = fill(redis_client, stream, 20)
    client = redis.Redis.from_url(redis_url, protocol=3)
    transport = StreamTransport(client, WORKER, input_stream=stream)
    try:
        assert [d.entry_id for d in transport.read(10, 1) + transport.take_read_ahead()] == entries
    finally:
        transport.close()


@pytest.fixture()
def worker_user(redis_url: str) -> Iterator[redis.Redis]:
    """A client logged in as an ACL user with exactly the worker role's rules (`harness acl --role worker`)."""
    user, password = f"harness-attack-{secrets.token_hex(4)}", secrets.token_hex(16)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", user,
                          *user_rules(AclTarget("worker", WORKER, input_stream="attack:acl"), password_rule(password)))
    client = redis.Redis.from_url(redis_url, username=user, password=password)
    try:
        yield client
    finally:
        client.close()
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def test_the_worker_role_may_read_ahead_and_keep_windows_partitioned_or_not(
        worker_user: redis.Redis, redis_client: redis.Redis) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):  # a restricted user indeed
        worker_user.xadd(keys.PRODUCTION_STREAM, {"data": b"forged"})
    for partition in (None, all_partitions(4)[3]):
        stream = keys.scoped("attack:acl", partition)
        entries = fill(redis_client, stream, 20)
        transport = StreamTransport(worker_user, WORKER, input_stream="attack:acl", partition=partition)
        got = transport.read(10, 1) + transport.take_read_ahead()
        assert [d.entry_id for d in got] == entries
        ids = [(f"s-{index}", d.entry_id) for index, d in enumerate(got)]
        assert transport.first_sightings(ids) == [True] * 20
        assert transport.first_sightings([("s-0", "1-1")]) == [False]
        transport.reset()  # drops the reader's connection, not the user's client


# --- duplicate ids kept per window ------------------------------------------------------------------------


def test_a_partitions_two_windows_share_its_slot(redis_client: redis.Redis) -> None:
    """In a cluster the script's two keys must hash to one slot: the partition's tag carries both."""
    partition = all_partitions(8)[5]
    seen = SeenIds(redis_client, WORKER, 1, partition, ServerClock(redis_client))
    assert seen.first_sightings([("a", "1-0")]) == [True]
    stored = [key.decode() for key in redis_client.keys("*seen-ids*")]
    assert stored and all(key.startswith(f"harness:{partition.tag}:seen-ids:{WORKER}:") for key in stored)
    window = int(stored[0].rsplit(":", 1)[1])
    both = [keys.scoped(keys.seen_ids_key(WORKER, at), partition) for at in (window, window - 1)]
    assert key_slot(both[0].encode()) == key_slot(both[1].encode())


def test_a_one_second_ttl_remembers_an_id_across_the_boundary_and_redeliveries_pass(
        redis_client: redis.Redis) -> None:
    clock = ServerClock(redis_client)
    clock.server_ms = (clock.server_ms // 1000 + 0.999) * 1000  # the last ms of a 1 s window
    batch = [(f"id-{index}", f"{index + 1}-0") for index in range(50)]
    assert SeenIds(redis_client, WORKER, 1, None, clock).first_sightings(batch) == [True] * 50
    clock.server_ms += 2  # the next window, 2 ms later: a crash and an immediate restart
    after_crash = SeenIds(redis_client, WORKER, 1, None, clock)
    assert after_crash.first_sightings(batch) == [True] * 50, "the same entries again: redeliveries"
    assert after_crash.first_sightings([("id-7", "99-0")]) == [False], "another entry: a duplicate"


def test_a_step_back_of_the_hosts_clock_lets_no_duplicate_through(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ServerClock(redis_client)
    ttl_s = 3600  # the default
    clock.server_ms = (clock.server_ms // (ttl_s * 1000) + 1) * ttl_s * 1000 + 200  # 200 ms into a window
    seen = SeenIds(redis_client, WORKER, ttl_s, None, clock)
    assert seen.first_sightings([("dup", "1-0")]) == [True]

    class SteppedBack:
        """The host's wall clock set back one second (an NTP step); monotonic time goes on."""

        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return time.time() - 1.0

    monkeypatch.setattr(clock_module, "time", SteppedBack)
    assert seen.first_sightings([("dup", "2-0")]) == [False], "the same id on another entry is a duplicate"


def test_an_old_window_is_freed_off_the_servers_main_thread(redis_client: redis.Redis) -> None:
    clock = ServerClock(redis_client)
    seen = SeenIds(redis_client, WORKER, 1, None, clock)
    assert all(seen.first_sightings([(f"id-{index}", f"{index + 1}-0") for index in range(1_000)]))
    old = [key.decode() for key in redis_client.keys("*seen-ids*")]
    freed_before = int(redis_client.info("memory")["lazyfreed_objects"])
    clock.server_ms += 2_000  # two windows on: the old window is checked no more
    assert SeenIds(redis_client, WORKER, 1, None, clock).first_sightings([("later", "5000-0")]) == [True]
    wait_until(lambda: not redis_client.exists(*old), "the old window's hash to go")
    # Freed in the background, the hash is counted once the lazyfree thread is done with it.
    wait_until(lambda: int(redis_client.info("memory")["lazyfreed_objects"]) > freed_before,
               "the old window's hash to be freed off the main thread", timeout_s=2.0)
