"""The comparator's XREADGROUP: NOACK, one request ahead while there is a backlog (transport/prefetch.py),
so Redis gathers the next chunk while this process ingests the current one."""

from __future__ import annotations

from typing import Any

import redis

from harness.transport import prefetch


class PrefetchingReader:
    """Raw XREADGROUP replies; the comparator's group is its only consumer. With NOACK the group has moved
    past what a dropped request delivered: the caller rewinds the group from its checkpoint after a drop."""

    def __init__(self, client: redis.Redis) -> None:
        self._reader = prefetch.PrefetchingReader(client, noack=True)

    def read(self, group: str, streams: list[str], count: int, block_ms: int) -> Any:
        return self._reader.read(group, group, streams, count, block_ms)

    def send(self, group: str, streams: list[str], count: int, block_ms: int) -> None:
        """Send the next request now; the next read() returns its reply."""
        self._reader.send(group, group, streams, count, block_ms)

    def drop(self) -> None:
        """Forget a request in flight (its connection is closed: a late reply must not be read as another's)."""
        self._reader.drop()


def has_backlog(reply: Any, read_count: int) -> bool:
    """Whether some stream of a raw XREADGROUP reply gave a full chunk (so more is likely waiting)."""
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply or [])
    return any(len(entries or ()) >= read_count for entries in streams)
