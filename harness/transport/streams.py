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
from harness.partitions import Partition
from harness.transport import keys
from harness.transport.base import Backlog, CommitBatch, CommitOutcome, Delivery, Heartbeat, Transport
from harness.transport.control import RedisControl
from harness.transport.dedupe import SeenIds
from harness.transport.errors import TransportError
from harness.transport.fencing import COMMIT_SCRIPT
from harness.transport.prefetch import PrefetchingReader, reply_entries
from harness.transport.redis_errors import classify_redis_error, translated
from harness.transport.replies import server_time_ms, text

DEFAULT_DEDUPE_TTL_S = 3600  # a signal id is remembered at least this long (and at most twice) to reject duplicates
DEFAULT_RESULTS_MAXLEN = 0  # 0 keeps every result; the comparator and export read them back
DEFAULT_DEAD_LETTERS_MAXLEN = 10_000  # per worker; what is trimmed past it is counted, never silent


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
        dead_letters_maxlen: int = DEFAULT_DEAD_LETTERS_MAXLEN,
        partition: Partition | None = None,
    ) -> None:
        self._client = client
        self._worker = worker
        self._partition = partition
        self._stream = keys.scoped(input_stream, partition)
        self._group = worker
        # One consumer per group (and partition): an online model processes in order. Replicas that
        # take a partition over share the name, so they inherit its pending entries, in order.
        self._consumer = worker
        self._results = keys.scoped(keys.results_stream(worker), partition)
        self._dead_letters = keys.scoped(keys.dead_letter_stream(worker), partition)
        self._roles = keys.scoped(keys.ROLES_KEY, partition)
        self._production = keys.scoped(keys.PRODUCTION_STREAM, partition)
        self._results_maxlen = results_maxlen
        self._dead_letters_maxlen = dead_letters_maxlen
        self._start_id = start_id
        self._pending_cursor: str | None = "0"
        self._group_ready = False
        self._commit = client.register_script(COMMIT_SCRIPT)
        self._seen_ids = SeenIds(client, worker, dedupe_ttl_s, partition, self.server_time_ms)
        self._control = RedisControl(client, worker, partition)
        self._reader = PrefetchingReader(client)
        # Whether the commit script checked our lease since the last read was sent: if not (idle, a
        # heartbeat since), the next read has Redis check it first (read_window_ms's `confirm`).
        self._fence_checked = False

    @property
    def results_stream(self) -> str:
        return self._results

    @property
    def partition(self) -> Partition | None:
        return self._partition

    def _scoped(self, key: str) -> str:
        return keys.scoped(key, self._partition)

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        with translated():
            try:
                return self._read(count, block_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The store lost the group (a restart without persistence): make it again.
                self._group_ready = False
                return self._read(count, block_ms)

    def _read(self, count: int, block_ms: int) -> list[Delivery]:
        if not self._group_ready:
            ensure_group(self._client, self._stream, self._group, self._start_id)
            self._group_ready = True
        if self._pending_cursor is not None:
            pending = self._read_pending()
            if pending:
                return pending
            self._pending_cursor = None
        streams = [self._stream]
        if self._reader.in_flight:
            deliveries = self._deliveries(self._reader.read(self._group, self._consumer, streams, count, None))
            if deliveries:
                self._read_ahead(len(deliveries), count)
                return deliveries
        block_ms = self._read_window_ms(max(block_ms, 0))
        reply = self._reader.read(self._group, self._consumer, streams, count, block_ms if block_ms > 0 else None)
        deliveries = self._deliveries(reply)
        self._read_ahead(len(deliveries), count)
        return deliveries

    def take_read_ahead(self) -> list[Delivery]:
        if not self._reader.in_flight:
            return []
        with translated():
            return self._deliveries(self._reader.read(self._group, self._consumer, [self._stream], 0, None))

    def _read_ahead(self, got: int, count: int) -> None:
        # A full batch means a backlog: ask for the next one now, so Redis gathers it while this process
        # works on the batch in hand. Its entries are pending for this consumer from then on, as any read's.
        if got >= count:
            self._read_window_ms(0)  # answered at once, but bounded by the lease like any read
            self._reader.send(self._group, self._consumer, [self._stream], count, None)

    def _read_window_ms(self, block_ms: int) -> int:
        """How long the read about to be sent may wait (RedisControl.read_window_ms: never past the lease),
        with Redis confirming the lease first unless a commit checked it since the previous read."""
        window_ms = self._control.read_window_ms(block_ms, confirm=not self._fence_checked)
        self._fence_checked = False
        return window_ms

    @staticmethod
    def _deliveries(reply: Any) -> list[Delivery]:
        payload_field = keys.PAYLOAD_FIELD
        deliveries = []
        for entry_id, fields in reply_entries(reply):  # runs once per message: kept lean
            entry = entry_id.decode()
            payload = fields[1] if fields and fields[0] == payload_field else _field(fields, payload_field)
            deliveries.append(Delivery(entry, payload, float(entry.split("-", 1)[0])))
        return deliveries

    def _read_pending(self) -> list[Delivery]:
        # One entry at a time: a read counts as a delivery for every entry it returns, so reading
        # the whole batch again would blame the neighbours of a message that kills the process.
        # Not fenced by the lease: it re-reads this consumer's own pending entries and claims nothing new.
        assert self._pending_cursor is not None
        response = self._client.xreadgroup(
            self._group, self._consumer, {self._stream: self._pending_cursor}, count=1
        )
        entries: list[Any]
        if isinstance(response, dict):  # RESP3: {stream: [entries]}
            entries = next(iter(response.values()), [[]])[0]
        else:
            entries = response[0][1] if response else []
        if not entries:
            return []
        entry_id, fields = entries[0]
        self._pending_cursor = text(entry_id)
        info = self._client.xpending_range(
            self._stream, self._group, min=entry_id, max=entry_id, count=1, consumername=self._consumer,
        )
        times = int(info[0]["times_delivered"]) if info else 2
        return [self._delivery(entry_id, fields, True, times)]

    @staticmethod
    def _delivery(entry_id: Any, fields: dict[bytes, bytes] | None, redelivered: bool, count: int) -> Delivery:
        entry = text(entry_id)
        payload = (fields or {}).get(keys.PAYLOAD_FIELD, b"")
        return Delivery(entry, payload, entry_id_ms(entry), redelivered, count)

    def commit(self, batch: CommitBatch) -> CommitOutcome:
        args: list[str | bytes | int] = [
            self._worker, self._group, len(batch.results), len(batch.dead_letters), self._results_maxlen,
            self._control.lease_value, self._dead_letters_maxlen,
            self._stream, self._roles, self._production, keys.PRODUCTION_CHANNEL,
            "0" if batch.model_state is None else "1", batch.model_state or b"",
        ]
        for entry_id, payload in batch.results:
            args += [entry_id, payload]
        for letter in batch.dead_letters:
            args += [letter.entry_id, letter.reason, letter.detail, letter.signal_id or "", letter.payload,
                     letter.payload_size, letter.payload_sha256]
        args += [d.entry_id for d in batch.acked]
        with translated():
            is_primary, epoch, published, already = self._commit(
                keys=[self._results, self._dead_letters, self._control.lease_key,
                      self._scoped(keys.dead_letters_dropped_key(self._worker)),
                      self._scoped(keys.model_state_key(self._worker))],
                args=args,
            )
        self._fence_checked = True
        return CommitOutcome(bool(is_primary), int(epoch), int(published), bool(already))

    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        return self._seen_ids.first_sightings(ids)

    def backlog(self) -> Backlog:
        with translated():
            try:
                groups = self._client.xinfo_groups(self._stream)
            except redis.ResponseError:  # no input stream yet (or pub/sub's placeholder): nothing to tell
                return Backlog(None, 0)
        for group in groups:
            if text(group.get("name")) == self._group:
                lag = group.get("lag")  # Redis 7; None where Redis cannot tell (a trimmed or older stream)
                return Backlog(None if lag is None else int(lag), int(group.get("pending") or 0))
        return Backlog(None, 0)

    def server_time_ms(self) -> float:
        with translated():
            return server_time_ms(self._client)

    def reset(self) -> None:
        self._reader.drop()  # what a request in flight delivered is pending now: read again from the start
        self._pending_cursor = "0"
        self._group_ready = False

    def release(self) -> None:
        self._reader.drop()

    def close(self) -> None:
        self.release()
        self._client.close()

    def beat(self, heartbeat: Heartbeat) -> None:
        self._fence_checked = False  # the loop did other work since its last commit (once a second)
        self._control.beat(heartbeat)

    def drain_requested(self) -> bool:
        return self._control.drain_requested()

    def claim_primary_if_unset(self) -> bool:
        return self._control.claim_primary_if_unset()

    def acquire_lease(self, ttl_s: float, wait_s: float) -> int:
        return self._control.acquire_lease(ttl_s, wait_s)

    def renew_lease(self) -> bool:
        return self._control.renew_lease()

    def release_lease(self) -> None:
        self._control.release_lease()

    def bind_model_version(self, model_version: str, reset: bool) -> bytes | None:
        return self._control.bind_model_version(model_version, reset)

    def classify(self, exc: BaseException) -> TransportError | None:
        return classify_redis_error(exc)


def _field(fields: list[bytes] | None, name: bytes) -> bytes:
    """A field of a raw stream entry ([name, value, ...]); b"" when it is absent (a bad message, dead-lettered)."""
    pairs = fields or []
    return next((pairs[at + 1] for at in range(0, len(pairs) - 1, 2) if pairs[at] == name), b"")


def wait_for_redis(client: redis.Redis, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
