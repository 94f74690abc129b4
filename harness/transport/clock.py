"""The store's clock, read locally: a Redis TIME round trip every RESYNC_S, not one per batch.

Latencies and entry ids are on the Redis server's clock; a process corrects its own clock by the
offset measured against the middle of the TIME round trip (the server read its clock about then).
"""

from __future__ import annotations

import time
from collections.abc import Callable

RESYNC_S = 30.0


class StoreClock:
    def __init__(self, server_time_ms: Callable[[], float], resync_s: float = RESYNC_S) -> None:
        self._server_time_ms = server_time_ms
        self._resync_s = resync_s
        self._offset_ms = 0.0
        self._synced_at = -resync_s

    def sync_if_due(self) -> None:
        """Measure the offset again when it is older than `resync_s` (raises what the TIME call raises)."""
        now = time.monotonic()
        if now - self._synced_at >= self._resync_s:
            before = time.time()
            server_ms = self._server_time_ms()
            self._offset_ms = server_ms - (before + time.time()) * 500.0
            self._synced_at = now

    def now_ms(self) -> float:
        """The store's time now, in ms, from the local clock and the last offset measured."""
        return time.time() * 1000.0 + self._offset_ms
