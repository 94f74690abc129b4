"""Duplicate-id detection on a real Redis (harness.transport.dedupe) and the stream transport's read-ahead."""

from __future__ import annotations

import redis

from harness.transport import keys
from harness.transport.dedupe import SeenIds
from harness.transport.streams import StreamTransport

WORKER = "dedupe-test"


class SettableClock:
    """The store's time as the test says (ms); SeenIds reads it through its StoreClock."""

    def __init__(self, redis_client: redis.Redis) -> None:
        seconds, micros = redis_client.time()
        self.server_ms = seconds * 1000.0 + micros / 1000.0

    def __call__(self) -> float:
        return float(self.server_ms)


def seen_ids(redis_client: redis.Redis, clock: SettableClock, ttl_s: int = 3600) -> SeenIds:
    return SeenIds(redis_client, WORKER, ttl_s, None, clock)


def test_new_ids_pass_redeliveries_pass_and_duplicates_do_not(redis_client: redis.Redis) -> None:
    seen = seen_ids(redis_client, SettableClock(redis_client))
    assert seen.first_sightings([("a", "1-0"), ("b", "2-0"), ("a", "3-0")]) == [True, True, False]
    # A redelivery (same id on the same entry) passes again; the same id on a new entry does not.
    assert seen.first_sightings([("a", "1-0"), ("b", "9-0"), ("c", "4-0")]) == [True, False, True]


def test_an_id_is_remembered_into_the_next_window_and_forgotten_after(redis_client: redis.Redis) -> None:
    clock = SettableClock(redis_client)
    ttl_s = 100
    clock.server_ms = (clock.server_ms // (ttl_s * 1000) + 0.99) * ttl_s * 1000  # late in a window
    seen = SeenIds(redis_client, WORKER, ttl_s, None, clock)
    assert seen.first_sightings([("x", "1-0")]) == [True]
    window = int(clock.server_ms // 1000 // ttl_s)
    stored = keys.seen_ids_key(WORKER, window)
    assert redis_client.hget(stored, "x") == b"1-0"
    assert 0 < redis_client.ttl(stored) <= 2 * ttl_s, "the window's hash expires by itself"

    later = SeenIds(redis_client, WORKER, ttl_s, None, clock)  # a new clock: it resyncs at once
    clock.server_ms += ttl_s * 1000  # the next window: the previous one is still checked
    assert later.first_sightings([("x", "2-0")]) == [False]
    much_later = SeenIds(redis_client, WORKER, ttl_s, None, clock)
    clock.server_ms += ttl_s * 1000  # two windows on: the id has been remembered at least ttl_s
    assert much_later.first_sightings([("x", "3-0")]) == [True]


def test_a_batch_larger_than_one_lua_unpack_is_checked_whole(redis_client: redis.Redis) -> None:
    seen = seen_ids(redis_client, SettableClock(redis_client))
    ids = [(f"s-{index}", f"{index + 1}-0") for index in range(5_000)]
    assert seen.first_sightings(ids) == [True] * 5_000
    again = [(f"s-{index}", f"{index + 1}-0" if index % 2 else "99999-0") for index in range(5_000)]
    assert seen.first_sightings(again) == [index % 2 == 1 for index in range(5_000)]


def filled_transport(redis_client: redis.Redis, stream: str, messages: int) -> StreamTransport:
    for index in range(messages):
        redis_client.xadd(stream, {keys.PAYLOAD_FIELD: f"m{index}".encode()})
    return StreamTransport(redis_client, WORKER, input_stream=stream)


def test_a_read_ahead_is_handed_over_and_leaves_nothing_unread(redis_client: redis.Redis) -> None:
    stream = "readahead:input"
    transport = filled_transport(redis_client, stream, 25)
    try:
        seen: list[bytes] = []
        first = transport.read(10, 100)  # a full batch: the next one is requested at once
        seen += [delivery.payload for delivery in first]
        assert int(redis_client.xpending(stream, WORKER)["pending"]) == 20, "the read ahead delivered 10 more"
        seen += [delivery.payload for delivery in transport.take_read_ahead()]
        assert transport.take_read_ahead() == [], "nothing is in flight once it was taken"
        seen += [delivery.payload for delivery in transport.read(10, 100)]  # 5 left: no read ahead
        assert transport.take_read_ahead() == []
        assert seen == [f"m{index}".encode() for index in range(25)], "every entry once, in order"
    finally:
        transport.close()


def test_a_reset_drops_the_read_ahead_and_its_entries_come_back_as_pending(redis_client: redis.Redis) -> None:
    transport = filled_transport(redis_client, "readahead:reset", 20)
    try:
        transport.read(10, 100)
        transport.reset()  # as after a store error: what was delivered is read again, one at a time
        again = [transport.read(10, 100)[0] for _ in range(20)]
        assert [delivery.payload for delivery in again] == [f"m{index}".encode() for index in range(20)]
        assert all(delivery.redelivered for delivery in again)
    finally:
        transport.close()
