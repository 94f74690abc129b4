"""How far each side is behind the input, in entries and seconds, and whether it has stalled.

Entries: what the side's consumer group on the input has not processed yet (not delivered, plus
delivered but not acked). Seconds: the input's newest entry time minus the side's frontier (the
input entry of its latest result). Stalled: the frontier has not moved for `stall_after_s` while
input is left for it: its "missing" results may only be late.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from harness.comparator.join import input_position
from harness.transport.replies import text

if TYPE_CHECKING:
    from harness.comparator.service import ComparatorSettings
    from harness.comparator.state import ComparatorState


class LagMeter:
    def __init__(self, client: redis.Redis, settings: ComparatorSettings,
                 state: Callable[[], ComparatorState]) -> None:
        self._client = client
        self._settings = settings
        self._state = state
        self._moved: dict[str, tuple[str | None, float]] = {}  # side -> (frontier, when it last changed)

    def measure(self) -> dict[str, dict[str, Any]]:
        groups, last_entry = self._input_groups()
        now = time.monotonic()
        sides = self._state().progress()["sides"]
        figures: dict[str, dict[str, Any]] = {}
        for feed in self._settings.feeds:
            frontier = sides.get(feed.side, {}).get("frontier")
            before, since = self._moved.get(feed.side, (None, now))
            if frontier != before or feed.side not in self._moved:
                self._moved[feed.side] = (frontier, now)
                since = now
            group = groups.get(feed.worker or "")
            lag_entries = None if group is None else _entries_behind(group)
            lag_s = _seconds_behind(last_entry, frontier)
            left = bool(lag_entries) if lag_entries is not None else bool(lag_s)
            stalled_for = now - since
            figures[feed.side] = {
                "lag_entries": lag_entries, "lag_s": lag_s,
                "stalled": left and stalled_for >= self._settings.stall_after_s,
                "stalled_for_s": round(stalled_for, 1) if left else 0.0,
            }
        return figures

    def _input_groups(self) -> tuple[dict[str, dict[str, Any]], str | None]:
        stream = self._settings.input_stream
        try:
            info = self._client.xinfo_stream(stream)
            rows = self._client.xinfo_groups(stream)
        except redis.ResponseError:  # no input stream (yet): nothing is behind
            return {}, None
        groups = {text(row.get("name")): row for row in rows}
        return groups, text(info.get("last-generated-id") or "") or None


def _entries_behind(group: dict[str, Any]) -> int | None:
    lag = group.get("lag")  # Redis 7: entries not yet delivered to the group; None when Redis cannot tell
    if lag is None:
        return None
    return int(lag) + int(group.get("pending") or 0)


def _seconds_behind(last_entry: str | None, frontier: str | None) -> float | None:
    if last_entry is None or frontier is None:
        return None
    behind_ms = (input_position(last_entry) >> 32) - (input_position(frontier) >> 32)
    return round(max(behind_ms, 0) / 1000.0, 3)
