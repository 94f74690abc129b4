"""The comparator's reader: a request sent ahead is the one read next; a dropped one leaves no stale reply."""

from __future__ import annotations

import redis

from harness.comparator.reader import PrefetchingReader


def entries_of(reply: object) -> list[bytes]:
    streams = reply.items() if isinstance(reply, dict) else reply or []
    return [entry_id for _, entries in streams for entry_id, _ in entries]


def test_a_request_sent_ahead_returns_the_next_chunk(redis_client: redis.Redis) -> None:
    ids = [redis_client.xadd("results", {b"data": b"x"}) for _ in range(5)]
    redis_client.xgroup_create("results", "g", "0")
    reader = PrefetchingReader(redis_client)
    first = reader.read("g", ["results"], 3, 10)
    reader.send("g", ["results"], 3, 10)
    assert entries_of(first) == ids[:3]
    assert entries_of(reader.read("g", ["results"], 3, 10)) == ids[3:]
    reader.drop()


def test_a_dropped_request_leaves_no_reply_for_the_next_read(redis_client: redis.Redis) -> None:
    redis_client.xadd("results", {b"data": b"x"})
    redis_client.xgroup_create("results", "g", "0")
    reader = PrefetchingReader(redis_client)
    reader.send("g", ["results"], 10, 10)
    reader.drop()  # what it delivered is gone from the group: the service rewinds after a drop
    redis_client.xadd("results", {b"data": b"y"})
    redis_client.xgroup_setid("results", "g", "0")
    assert len(entries_of(reader.read("g", ["results"], 10, 10))) == 2
    reader.drop()
