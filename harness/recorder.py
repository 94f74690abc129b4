"""Record signals from the live input stream into a signal file, for backtests.

Reads with plain XREAD from a start id (no consumer group), so nothing in production changes:
no pending entries, no acks, no group whose lag would hold back trimming.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contracts import ContractError, SignalReceived, decode_signal
from harness.errors import ConfigurationError
from harness.transport.keys import PAYLOAD_FIELD
from harness.transport.replies import text

READ_COUNT = 500  # entries per XREAD
MAX_BLOCK_MS = 500  # longest single wait, so --seconds is honoured closely


@dataclass(frozen=True)
class RecordResult:
    recorded: int
    skipped: int  # entries without a payload, or whose payload breaks the contract
    last_id: str


def resolve_start(client: Any, stream: str, start_id: str) -> str:
    """'$' becomes the stream's current last id (or 0-0), so "new entries" means new from now on."""
    if start_id != "$":
        return start_id
    last = client.xrevrange(stream, count=1)
    return text(last[0][0]) if last else "0-0"


def record(
    client: Any,
    stream: str,
    out: str | Path,
    *,
    count: int | None = None,
    seconds: float | None = None,
    start_id: str = "$",
    on_progress: Callable[[int], None] | None = None,
) -> RecordResult:
    """Write what arrives on `stream` after `start_id` to `out` until `count` signals or `seconds` elapse."""
    from harness.producer.files import write_signals  # pyarrow: slow to import

    if count is None and seconds is None:
        raise ConfigurationError("give --count N or --seconds S (or both): how many signals, or how long, to record")
    reader = _Reader(client, stream, resolve_start(client, stream, start_id), count, seconds, on_progress)
    recorded = write_signals(Path(out), reader.signals())
    return RecordResult(recorded, reader.skipped, reader.cursor)


class _Reader:
    def __init__(self, client: Any, stream: str, cursor: str, count: int | None, seconds: float | None,
                 on_progress: Callable[[int], None] | None) -> None:
        self._client, self._stream, self.cursor = client, stream, cursor
        self._count, self._on_progress = count, on_progress
        self._deadline = time.monotonic() + seconds if seconds is not None else None
        self.skipped = 0

    def signals(self) -> Iterator[SignalReceived]:
        recorded = 0
        while self._count is None or recorded < self._count:
            block_ms = MAX_BLOCK_MS
            if self._deadline is not None:
                left_ms = (self._deadline - time.monotonic()) * 1000.0
                if left_ms <= 0:
                    return
                block_ms = max(1, min(MAX_BLOCK_MS, int(left_ms)))
            wanted = READ_COUNT if self._count is None else min(READ_COUNT, self._count - recorded)
            response = self._client.xread({self._stream: self.cursor}, count=wanted, block=block_ms)
            for _, entries in response or []:
                for entry_id, fields in entries:
                    self.cursor = text(entry_id)
                    signal = self._decode(fields)
                    if signal is None:
                        continue
                    recorded += 1
                    yield signal
                if self._on_progress is not None:
                    self._on_progress(recorded)

    def _decode(self, fields: Any) -> SignalReceived | None:
        payload = (fields or {}).get(PAYLOAD_FIELD)
        if payload:
            try:
                return decode_signal(payload, max_samples=sys.maxsize)
            except ContractError:
                pass
        self.skipped += 1
        return None



