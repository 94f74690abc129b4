"""The comparator service: reads the workers' results streams, feeds ComparatorState, checkpoints.

Exactly-once counting: the state is persisted and the results read since the last checkpoint
are acked in the same MULTI/EXEC. After a crash the comparator reloads the checkpoint and
re-reads its pending (unacked) results, which the checkpoint has not counted yet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
import redis

from harness.comparator.state import ComparatorState
from harness.comparator.tap import TapMapping
from harness.transport import keys
from harness.transport.streams import ensure_group

log = logging.getLogger("harness.comparator")

STATE_KEY = "harness:comparator:state"  # the msgpack checkpoint of ComparatorState
SUMMARY_KEY = "harness:comparator:summary"  # a small hash for progress displays and `status`
DEFAULT_GROUP = "comparator"
DEFAULT_CHECKPOINT_S = 1.0
DEFAULT_READ_COUNT = 2_000


@dataclass(frozen=True)
class Feed:
    """One side's input: a results stream, read through the comparator's consumer group."""

    side: str
    stream: str
    tap: TapMapping | None = None  # set when the stream carries a production worker's own JSON


@dataclass
class ComparatorSettings:
    feeds: list[Feed]
    group: str = DEFAULT_GROUP
    timeout_ms: float = 30_000
    max_pending: int = 200_000
    window: int = 1_000
    checkpoint_s: float = DEFAULT_CHECKPOINT_S
    read_count: int = DEFAULT_READ_COUNT
    block_ms: int = 500
    exit_when_idle_s: float | None = None
    state_key: str = STATE_KEY
    extra: dict[str, Any] = field(default_factory=dict)


def default_feeds(legacy: str = "legacy", candidate: str = "candidate", replica: str | None = None) -> list[Feed]:
    feeds = [Feed("legacy", keys.results_stream(legacy)), Feed("candidate", keys.results_stream(candidate))]
    if replica:
        feeds.append(Feed("replica", keys.results_stream(replica)))
    return feeds


def load_state(client: redis.Redis, settings: ComparatorSettings) -> ComparatorState:
    saved = client.get(settings.state_key)
    if saved:
        return ComparatorState.from_bytes(saved)
    return ComparatorState(
        timeout_ms=settings.timeout_ms, max_pending=settings.max_pending, window=settings.window,
        sides=[feed.side for feed in settings.feeds],
    )


def produced_count(client: redis.Redis) -> int | None:
    value = client.get(keys.PRODUCED_KEY)
    return int(value) if value is not None else None


def live_report(client: redis.Redis) -> dict[str, Any] | None:
    """The harness.report/1 report of the comparison kept in Redis (None if there is none yet).

    It is dated by the comparator's last checkpoint, so a comparator that died shows as stale.
    Raises ValueError when the saved state is unreadable.
    """
    from harness.cutover.status import production_summary

    saved = client.get(STATE_KEY)
    if not saved:
        return None
    state = ComparatorState.from_bytes(saved)
    updated_ms = client.hget(SUMMARY_KEY, "updated_ms")
    generated_at = None
    if updated_ms is not None:
        stamp = datetime.fromtimestamp(float(updated_ms) / 1000.0, UTC)
        generated_at = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    report = state.report(produced_count(client), generated_at=generated_at)
    report["cutover"] = production_summary(client)
    return report


class ComparatorService:
    def __init__(self, client: redis.Redis, settings: ComparatorSettings) -> None:
        self._client = client
        self._settings = settings
        self._by_stream = {feed.stream: feed for feed in settings.feeds}
        self._cursors: dict[str, str] = {}
        self._unacked: dict[str, list[bytes]] = {feed.stream: [] for feed in settings.feeds}
        self._stopping = False
        self.state = load_state(client, settings)

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> ComparatorState:
        for feed in self._settings.feeds:
            ensure_group(self._client, feed.stream, self._settings.group, "0")
            self._cursors[feed.stream] = "0"  # pending first: read but not counted in the checkpoint
        last_checkpoint = time.monotonic()
        idle_since: float | None = None
        while not self._stopping:
            got = self.poll_once()
            now = time.monotonic()
            idle_since = None if got else idle_since or now
            if now - last_checkpoint >= self._settings.checkpoint_s or sum(map(len, self._unacked.values())) > 50_000:
                self.checkpoint()
                last_checkpoint = now
            limit = self._settings.exit_when_idle_s
            if limit is not None and idle_since is not None and now - idle_since >= limit:
                break
        self.checkpoint()
        return self.state

    def poll_once(self) -> int:
        """Read one round from every feed; returns how many results were ingested."""
        server_ms = self._server_ms()
        pending_streams = {s: c for s, c in self._cursors.items() if c != ">"}
        if pending_streams:
            response = self._client.xreadgroup(self._settings.group, self._settings.group, pending_streams,
                                               count=self._settings.read_count)
            got = self._ingest(response, server_ms, from_pending=True)
            for stream in pending_streams:
                if not any(_text(name) == stream and entries for name, entries in response or []):
                    self._cursors[stream] = ">"
            if got:
                return got
        response = self._client.xreadgroup(
            self._settings.group, self._settings.group, dict.fromkeys(self._cursors, ">"),
            count=self._settings.read_count, block=self._settings.block_ms,
        )
        got = self._ingest(response, server_ms, from_pending=False)
        self.state.expire(self._server_ms())
        return got

    def _ingest(self, response: Any, now_ms: float, from_pending: bool) -> int:
        total = 0
        for stream_name, entries in response or []:
            stream = _text(stream_name)
            if not entries:
                continue
            feed = self._by_stream[stream]
            records = [self._decode(feed, fields) for _, fields in entries]
            self.state.ingest(feed.side, [r for r in records if r is not None], now_ms)
            self._unacked[stream].extend(entry_id for entry_id, _ in entries)
            if from_pending:
                self._cursors[stream] = _text(entries[-1][0])
            total += len(entries)
        return total

    @staticmethod
    def _decode(feed: Feed, fields: Mapping[bytes, bytes] | None) -> Mapping[str, Any] | None:
        payload = (fields or {}).get(keys.PAYLOAD_FIELD)
        if payload is None:
            return None
        if feed.tap is not None:
            return feed.tap.to_record(payload)
        try:
            record = msgpack.unpackb(payload, raw=False)
        except Exception:
            record = None
        return record if isinstance(record, dict) else {"id": None}

    def checkpoint(self) -> None:
        """Persist the state and ack what it has counted, in one transaction."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._settings.state_key, self.state.to_bytes())
        for stream, entry_ids in self._unacked.items():
            if entry_ids:
                pipe.xack(stream, self._settings.group, *entry_ids)
        pipe.hset(SUMMARY_KEY, mapping=self.summary())
        pipe.execute()
        for entry_ids in self._unacked.values():
            entry_ids.clear()

    def summary(self) -> dict[str, str]:
        report = self.state.report(produced_count(self._client))
        return {"counts": json.dumps(report["counts"]), "ari": json.dumps(report["agreement"]["ari"]),
                "updated_ms": str(self._server_ms())}

    def _server_ms(self) -> float:
        seconds, micros = self._client.time()
        return float(seconds * 1000.0 + micros / 1000.0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
