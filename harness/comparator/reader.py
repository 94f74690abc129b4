"""XREADGROUP for the comparator on a connection of its own, one request ahead while there is a backlog:
Redis gathers the next chunk while this process ingests the current one."""

from __future__ import annotations

from typing import Any

import redis


class PrefetchingReader:
    """Raw XREADGROUP replies (no per-entry dicts). A request sent ahead is always read and returned next:
    with NOACK the group has moved past its entries, so a reply dropped unread must be followed by a rewind
    of the group (`drop` says so by leaving it to the caller, who rewinds from the checkpoint)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pool: Any = None  # the pool the held connection came from
        self._connection: Any = None  # a redis-py Connection while one is held
        self._sent = False

    def _pool_for(self, streams: list[str]) -> Any:
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            return pool
        # A Redis Cluster: the streams of one partition share a slot, so one node serves the request. Asked
        # again after each drop, so that after a failover the request goes to the slot's new master.
        cluster: Any = self._client
        return cluster.get_redis_connection(cluster.get_node_from_key(streams[0])).connection_pool

    def read(self, group: str, streams: list[str], count: int, block_ms: int) -> Any:
        if not self._sent:
            self.send(group, streams, count, block_ms)
        try:
            reply = self._connection.read_response()
        except BaseException:
            self.drop()
            raise
        self._sent = False
        return reply

    def send(self, group: str, streams: list[str], count: int, block_ms: int) -> None:
        """Send the next request now; the next read() returns its reply."""
        if self._sent:
            return
        if self._connection is None:
            self._pool = self._pool_for(streams)
            self._connection = self._pool.get_connection()
        try:
            self._connection.send_command("XREADGROUP", "GROUP", group, group, "COUNT", count, "BLOCK", block_ms,
                                          "NOACK", "STREAMS", *streams, *([">"] * len(streams)))
        except BaseException:
            self.drop()
            raise
        self._sent = True

    def drop(self) -> None:
        """Forget a request in flight (its connection is closed: a late reply must not be read as another's)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._sent:
                connection.disconnect()
            self._pool.release(connection)
        self._sent = False


def has_backlog(reply: Any, read_count: int) -> bool:
    """Whether some stream of a raw XREADGROUP reply gave a full chunk (so more is likely waiting)."""
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply or [])
    return any(len(entries or ()) >= read_count for entries in streams)
