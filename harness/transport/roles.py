"""Reading who is primary, the drain flag, consumer-group lag and production counts from Redis.

Shared below the services: the comparator's report and the cutover both read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from harness.partitions import Partition, all_partitions
from harness.transport import keys
from harness.transport.control import DRAIN
from harness.transport.replies import entry_after, text

LAG_SCAN_LIMIT = 10_000  # beyond this (Redis < 7 only), a lag is reported as the limit: "at least"


@dataclass(frozen=True)
class Roles:
    primary: str | None
    epoch: int
    watermark: str
    switched_at_ms: int | None
    previous: str | None
    rollback_until_ms: int | None


def read_roles(client: redis.Redis, partition: Partition | None = None) -> Roles:
    """The roles hash: a partition's (whose commit script reads it), or the deployment's (the epoch record)."""
    raw = {text(k): text(v) for k, v in client.hgetall(keys.scoped(keys.ROLES_KEY, partition)).items()}
    return Roles(
        primary=raw.get("primary"),
        epoch=int(raw.get("epoch", 0)),
        watermark=raw.get("watermark", "0-0"),
        switched_at_ms=int(raw["switched_at_ms"]) if "switched_at_ms" in raw else None,
        previous=raw.get("previous") or None,
        rollback_until_ms=int(raw["rollback_until_ms"]) if "rollback_until_ms" in raw else None,
    )


def request_drain(client: redis.Redis, worker: str) -> None:
    client.set(keys.control_key(worker), DRAIN)


def clear_drain(client: redis.Redis, worker: str) -> None:
    client.delete(keys.control_key(worker))


def drain_requested(client: redis.Redis, worker: str) -> bool:
    return bool(client.get(keys.control_key(worker)) == DRAIN.encode())


def group_lag(client: redis.Redis, stream: str, group: str, limit: int = LAG_SCAN_LIMIT) -> int | None:
    """Entries not yet delivered to the group, plus those delivered but not acked (None: no group).

    Redis 7 reports the lag itself; on older servers the undelivered entries are counted by
    reading at most `limit` of them.
    """
    try:
        groups = {text(g["name"]): g for g in client.xinfo_groups(stream)}
    except redis.ResponseError:
        return None
    if group not in groups:
        return None
    info = groups[group]
    if info.get("lag") is not None:
        return int(info["lag"]) + int(info["pending"])
    last = text(info["last-delivered-id"])
    undelivered = client.xrange(stream, min=f"({last}" if last != "0-0" else "-", count=limit)
    return len(undelivered) + int(info["pending"])


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def production_summary(client: redis.Redis, input_stream: str = keys.DEFAULT_INPUT_STREAM,
                       partitions: int = 1) -> dict[str, Any] | None:
    """The report's `cutover` section, over every partition; None before any worker was made primary."""
    roles = read_roles(client)
    if roles.primary is None:
        return None
    tally = _ProductionTally()
    for partition in all_partitions(partitions):
        tally.add(client, keys.scoped(input_stream, partition), keys.scoped(keys.PRODUCTION_STREAM, partition),
                  read_roles(client, partition).watermark)
    return {
        "primary": roles.primary, "epoch": roles.epoch, "previous": roles.previous,
        "switched_at": _iso(roles.switched_at_ms), "switched_at_ms": roles.switched_at_ms,
        "rollback_until_ms": roles.rollback_until_ms,
        "production_results": sum(tally.counts.values()), "production_duplicates": tally.duplicates,
        "production_missing": tally.missing, "in_flight": tally.in_flight, "by_worker": tally.counts,
        "by_epoch": tally.by_epoch,
    }


@dataclass
class _ProductionTally:
    """Production results per worker and epoch; doubles; input entries with none (missing past the
    watermark is in flight: the primary has not reached it yet)."""

    counts: dict[str, int] = field(default_factory=dict)
    by_epoch: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    missing: int = 0
    in_flight: int = 0

    def add(self, client: redis.Redis, input_stream: str, production: str, watermark: str) -> None:
        seen: set[str] = set()
        first: str | None = None
        for _, fields in client.xrange(production):
            entry = text(fields[b"entry"])
            worker = text(fields[b"worker"])
            self.counts[worker] = self.counts.get(worker, 0) + 1
            epoch = text(fields[b"epoch"])
            self.by_epoch[epoch] = self.by_epoch.get(epoch, 0) + 1
            if entry in seen:
                self.duplicates += 1
            seen.add(entry)
            if first is None or entry_after(first, entry):
                first = entry
        if first is None:
            return
        for entry_id, _ in client.xrange(input_stream, min=first):
            entry = text(entry_id)
            if entry in seen:
                continue
            if entry_after(entry, watermark):
                self.in_flight += 1
            else:
                self.missing += 1
