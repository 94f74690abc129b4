"""Redis Streams transport: one input stream, one consumer group per worker, atomic result+ack.

Each worker reads through its own consumer group, so every worker sees every entry in stream
order. A batch's results, dead letters and acks go in one Lua script (harness.transport.fencing):
an entry is acked only if its result was written, and a result is never written without its ack.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis

from harness.contracts import entry_id_ms
from harness.transport import keys
from harness.transport.base import CommitBatch, CommitOutcome, Delivery, Transport
from harness.transport.fencing import COMMIT_SCRIPT
from harness.transport.replies import server_time_ms, text

DEFAULT_DEDUPE_TTL_S = 3600  # how long a signal id is remembered to reject duplicates (one key per id)
DEFAULT_RESULTS_MAXLEN = 0  # 0 keeps every result; the comparator and export read them back

# One round trip per batch: remember each signal id with the entry it came on; answer 1 where the
# id is new or was first seen on this very entry (a redelivery), 0 where it came on another entry.
FIRST_SIGHTINGS_SCRIPT = """
local ttl = ARGV[1]
local verdicts = {}
for i, key in ipairs(KEYS) do
  local entry = ARGV[i + 1]
  if redis.call('SET', key, entry, 'NX', 'EX', ttl) then
    verdicts[i] = 1
  else
    verdicts[i] = (redis.call('GET', key) == entry) and 1 or 0
  end
end
return verdicts
"""


def ensure_group(client: redis.Redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create the consumer group if it is missing; True when it was created now."""
    try:
        client.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False


class StreamTransport(Transport):
    def __init__(
        self,
        client: redis.Redis,
        worker: str,
        input_stream: str = keys.DEFAULT_INPUT_STREAM,
        start_id: str = "0",
        dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S,
        results_maxlen: int = DEFAULT_RESULTS_MAXLEN,
    ) -> None:
        self._client = client
        self._worker = worker
        self._stream = input_stream
        self._group = worker
        self._consumer = worker  # one consumer per group: an online model processes in order
        self._results = keys.results_stream(worker)
        self._dead_letters = keys.dead_letter_stream(worker)
        self._dedupe_ttl_s = dedupe_ttl_s
        self._results_maxlen = results_maxlen
        self._start_id = start_id
        self._pending_cursor: str | None = "0"
        self._group_ready = False
        self._commit = client.register_script(COMMIT_SCRIPT)
        self._first_sightings = client.register_script(FIRST_SIGHTINGS_SCRIPT)

    @property
    def results_stream(self) -> str:
        return self._results

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        if not self._group_ready:
            ensure_group(self._client, self._stream, self._group, self._start_id)
            self._group_ready = True
        if self._pending_cursor is not None:
            pending = self._read_pending(count)
            if pending:
                return pending
            self._pending_cursor = None
        response = self._client.xreadgroup(
            self._group, self._consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        if not response:
            return []
        return [self._delivery(entry_id, fields, False, 1) for entry_id, fields in response[0][1]]

    def _read_pending(self, count: int) -> list[Delivery]:
        assert self._pending_cursor is not None
        response = self._client.xreadgroup(
            self._group, self._consumer, {self._stream: self._pending_cursor}, count=count
        )
        entries = response[0][1] if response else []
        if not entries:
            return []
        self._pending_cursor = text(entries[-1][0])
        info = self._client.xpending_range(
            self._stream, self._group, min=entries[0][0], max=entries[-1][0],
            count=len(entries), consumername=self._consumer,
        )
        times = {text(row["message_id"]): int(row["times_delivered"]) for row in info}
        return [
            self._delivery(entry_id, fields, True, times.get(text(entry_id), 2))
            for entry_id, fields in entries
        ]

    @staticmethod
    def _delivery(entry_id: Any, fields: dict[bytes, bytes] | None, redelivered: bool, count: int) -> Delivery:
        entry = text(entry_id)
        payload = (fields or {}).get(keys.PAYLOAD_FIELD, b"")
        return Delivery(entry, payload, entry_id_ms(entry), redelivered, count)

    def commit(self, batch: CommitBatch) -> CommitOutcome:
        args: list[str | bytes | int] = [
            self._worker, self._group, len(batch.results), len(batch.dead_letters), self._results_maxlen,
        ]
        for entry_id, payload in batch.results:
            args += [entry_id, payload]
        for letter in batch.dead_letters:
            args += [letter.entry_id, letter.reason, letter.detail, letter.signal_id or "", letter.payload]
        args += [d.entry_id for d in batch.acked]
        is_primary, epoch, published = self._commit(
            keys=[self._results, self._dead_letters, self._stream, keys.ROLES_KEY,
                  keys.PRODUCTION_STREAM, keys.PRODUCTION_CHANNEL],
            args=args,
        )
        return CommitOutcome(bool(is_primary), int(epoch), int(published))

    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        if not ids:
            return []
        verdicts = self._first_sightings(
            keys=[keys.seen_key(self._worker, signal_id) for signal_id, _ in ids],
            args=[self._dedupe_ttl_s, *[entry_id for _, entry_id in ids]],
        )
        return [bool(flag) for flag in verdicts]

    def server_time_ms(self) -> float:
        return server_time_ms(self._client)

    def reset(self) -> None:
        self._pending_cursor = "0"
        self._group_ready = False

    def close(self) -> None:
        self._client.close()


def wait_for_redis(client: redis.Redis, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
