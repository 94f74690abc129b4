"""XREADGROUP on a connection of its own, one request sent ahead: Redis gathers the next chunk while the
reader's process works on the current one (the worker's runtime and the comparator both read this way)."""

from __future__ import annotations

from typing import Any

import redis


class PrefetchingReader:
    """Raw XREADGROUP replies (no per-entry dicts). A request sent ahead is always read and returned next;
    `drop` forgets one in flight by closing its connection, so a late reply is never read as another's.

    Without NOACK, the entries of a dropped request stay pending for the consumer (read again as pending);
    with NOACK the group has moved past them, and the caller must rewind the group itself."""

    def __init__(self, client: redis.Redis, noack: bool = False) -> None:
        self._client = client
        self._noack = ("NOACK",) if noack else ()
        self._pool: Any = None  # the pool the held connection came from
        self._connection: Any = None  # a redis-py Connection while one is held
        self._sent = False

    @property
    def in_flight(self) -> bool:
        return self._sent

    def _pool_for(self, streams: list[str]) -> Any:
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            return pool
        # A Redis Cluster: the streams of one partition share a slot, so one node serves the request. Asked
        # again after each drop, so that after a failover the request goes to the slot's new master.
        cluster: Any = self._client
        return cluster.get_redis_connection(cluster.get_node_from_key(streams[0])).connection_pool

    def read(self, group: str, consumer: str, streams: list[str], count: int, block_ms: int | None) -> Any:
        """The reply to the request in flight, or to one sent now."""
        if not self._sent:
            self.send(group, consumer, streams, count, block_ms)
        try:
            reply = self._connection.read_response()
        except BaseException:
            self.drop()
            raise
        self._sent = False
        return reply

    def send(self, group: str, consumer: str, streams: list[str], count: int, block_ms: int | None) -> None:
        """Send the next request now (`block_ms` None: answer at once, even empty); read() returns its reply."""
        if self._sent:
            return
        if self._connection is None:
            self._pool = self._pool_for(streams)
            self._connection = self._pool.get_connection()
        blocking = () if block_ms is None else ("BLOCK", block_ms)
        try:
            self._connection.send_command("XREADGROUP", "GROUP", group, consumer, "COUNT", count, *blocking,
                                          *self._noack, "STREAMS", *streams, *([">"] * len(streams)))
        except BaseException:
            self.drop()
            raise
        self._sent = True

    def drop(self) -> None:
        """Forget a request in flight and give the connection back."""
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._sent:
                connection.disconnect()
            self._pool.release(connection)
        self._sent = False


def reply_entries(reply: Any) -> list[Any]:
    """The entries of a one-stream raw XREADGROUP reply (RESP2 list or RESP3 map); [] when it timed out."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    return list(entries or ())
