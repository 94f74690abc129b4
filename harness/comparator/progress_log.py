"""The comparator's progress lines: each checkpoint at debug level, and every N seconds matched/s, pending
and each side's lag at info level."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("harness.comparator")

PROGRESS_LOG_S = 10.0  # seconds between two progress lines (matched/s, pending, lag per side) at info level


class ProgressLog:
    """Logs each checkpoint (debug) and, every `every_s`, the progress (info): matched/s, pending, lag per side."""

    def __init__(self, every_s: float = PROGRESS_LOG_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: tuple[float, int] | None = None  # (when, matched) at the last progress line

    def checkpointed(self, summary: Mapping[str, str], progress: Mapping[str, Any],
                     cursors: Mapping[str, str]) -> None:
        counts = json.loads(summary["counts"])
        log.debug("checkpoint", extra={"matched": counts["matched"], "pending": counts["pending"],
                                       "cursors": dict(cursors)})
        now = self._clock()
        if self._last is None:
            self._last = (now, counts["matched"])
            return
        since, matched_before = self._last
        if now - since < self._every_s:
            return
        self._last = (now, counts["matched"])
        rate = (counts["matched"] - matched_before) / (now - since)
        fields: dict[str, Any] = {
            "matched": counts["matched"], "matched_per_s": round(rate, 1), "pending": counts["pending"],
            "missing_legacy": counts["missing_legacy"], "missing_candidate": counts["missing_candidate"]}
        lag = json.loads(summary.get("lag") or "{}")
        for side, figures in progress["sides"].items():
            # flat keys (legacy_lag_s=...), so a text log line reads as well as a JSON one
            fields[f"{side}_awaiting"] = figures.get("awaiting")
            for key in ("lag_entries", "lag_s", "stalled"):
                fields[f"{side}_{key}"] = lag.get(side, {}).get(key)
        log.info("progress", extra=fields)
