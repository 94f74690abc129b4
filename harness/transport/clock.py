"""The store's clock, read locally: a Redis TIME round trip every RESYNC_S, not one per batch.

Latencies and entry ids are on the Redis server's clock; a process carries it forward with its monotonic
clock from the offset measured against the middle of the TIME round trip (the server read its clock
about then), so a step of the host's wall clock moves neither latencies nor duplicate-id windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

RESYNC_S = 30.0
SYNC_SAMPLES = 5  # TIME calls at most per sync
GOOD_ROUND_TRIP_S = 0.0005  # a round trip this short is kept at once: the offset is then within 0.25 ms


class StoreClock:
    def __init__(self, server_time_ms: Callable[[], float], resync_s: float = RESYNC_S) -> None:
        self._server_time_ms = server_time_ms
        self._resync_s = resync_s
        self._offset_ms = 0.0
        self._synced_at = -resync_s

    def sync_if_due(self) -> None:
        """Measure the offset again when it is older than `resync_s` (raises what the TIME call raises)."""
        now = time.monotonic()
        if now - self._synced_at < self._resync_s:
            return
        # The offset is off by up to half the round trip: a store busy with another client's large reply
        # stretches one, and its error would bias every latency for `resync_s`. Keep the shortest of a few.
        best_round_trip_s = math.inf
        for _ in range(SYNC_SAMPLES):
            before = time.monotonic()
            server_ms = self._server_time_ms()
            after = time.monotonic()
            if after - before < best_round_trip_s:
                best_round_trip_s = after - before
                self._offset_ms = server_ms - (before + after) * 500.0
            if best_round_trip_s <= GOOD_ROUND_TRIP_S:
                break
        self._synced_at = now

    def now_ms(self) -> float:
        """The store's time now, in ms: the last measurement carried forward by the monotonic clock, which
        a step of the host's wall clock (an NTP correction, an operator) does not move."""
        return time.monotonic() * 1000.0 + self._offset_ms
