"""What `harness status` shows: roles and the rollback window, each worker (lease, lag, log file), the
comparator's summary, and the last audit entries."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import redis

from harness import experiments
from harness.audit import recent
from harness.cutover import launch
from harness.cutover.plan import window_left_ms
from harness.cutover.progress import when
from harness.cutover.stoppers import heartbeat
from harness.partitions import all_partitions
from harness.transport import keys, presence
from harness.transport.replies import text
from harness.transport.roles import drain_requested, group_lag, read_roles


def status(client: redis.Redis, input_stream: str = keys.DEFAULT_INPUT_STREAM, partitions: int = 1) -> dict[str, Any]:
    roles = read_roles(client)
    if partitions > 1:
        return {"roles": vars(roles), "rollback": rollback_window(client),
                "groups": partitioned_groups(client, input_stream, partitions),
                "comparator": comparator_summary(client), "audit": recent(client, 10)}
    groups: dict[str, dict[str, Any]] = {}
    try:
        infos = client.xinfo_groups(input_stream)
    except redis.ResponseError:
        infos = []
    for info in infos:
        name = text(info["name"])
        beat = heartbeat(client, name)
        lease = client.get(keys.lease_key(name))
        groups[name] = {"lag": group_lag(client, input_stream, name), "pending": int(info["pending"]),
                        "state": beat.get("state", "unknown"), "model_version": beat.get("model_version"),
                        "draining": drain_requested(client, name),
                        "lease_holder": text(lease).partition(" ")[2] if lease is not None else None,
                        "log": launch.log_file(client, name)}
    return {"roles": vars(roles), "rollback": rollback_window(client), "groups": groups,
            "comparator": comparator_summary(client), "audit": recent(client, 10)}


def partitioned_groups(client: redis.Redis, input_stream: str, partitions: int) -> dict[str, dict[str, Any]]:
    """Each worker over every partition: how many replicas hold how many partitions, summed lag and pending."""
    names: set[str] = set()
    for partition in all_partitions(partitions):
        try:
            names |= {text(info["name"]) for info in client.xinfo_groups(keys.scoped(input_stream, partition))}
        except redis.ResponseError:  # no input in this partition yet
            continue
    groups: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        holders = presence.lease_holders(client, name, partitions)
        states = Counter(presence.heartbeat_states(client, name, partitions).values())
        groups[name] = {
            "lag": presence.input_lag(client, input_stream, name, partitions),
            "pending": presence.pending(client, input_stream, name, partitions),
            "state": ", ".join(f"{state} {count}/{partitions}" for state, count in states.most_common()) or "unknown",
            "model_version": None, "draining": drain_requested(client, name),
            "lease_holder": (f"{len(set(holders.values()))} replica(s) hold {len(holders)}/{partitions} partitions"
                             if holders else None),
            "log": launch.log_file(client, name)}
    return groups


def rollback_window(client: redis.Redis) -> dict[str, Any]:
    """Whether a rollback is possible now: to whom, until when; a closed or retired window says so."""
    roles = read_roles(client)
    left_ms = window_left_ms(client, roles)
    if roles.previous and client.hexists(keys.RETIRED_KEY, roles.previous):
        retired = int(client.hget(keys.RETIRED_KEY, roles.previous) or 0)
        if retired > (roles.switched_at_ms or 0):
            return {"to": roles.previous, "open": False, "until_ms": None, "line": f"none ({roles.previous} retired)"}
    if not roles.previous or left_ms is None:
        return {"to": roles.previous or None, "open": False, "until_ms": None, "line": "none"}
    if left_ms <= 0:
        return {"to": roles.previous, "open": False, "until_ms": roles.rollback_until_ms,
                "line": f"closed since {when(roles.rollback_until_ms)}"}
    return {"to": roles.previous, "open": True, "until_ms": roles.rollback_until_ms,
            "line": f"to {roles.previous} until {when(roles.rollback_until_ms)} ({left_ms / 1000:.0f}s left)"}


def comparator_summary(client: redis.Redis) -> dict[str, Any] | None:
    """The comparator's own small summary of the current experiment (else the latest one that has one): when
    it last saved, how many pairs matched, how many are missing."""
    current = experiments.resolve(client)
    for experiment in [current, *reversed(experiments.load_all(client))]:
        raw = {text(k): text(v) for k, v in client.hgetall(experiment.summary_key).items()}
        if raw:
            break
    else:
        return None
    counts = json.loads(raw.get("counts", "{}"))
    updated_ms = int(float(raw["updated_ms"])) if "updated_ms" in raw else None
    missing = {name: value for name, value in counts.items() if name.startswith("missing")}
    return {"updated_ms": updated_ms, "updated": when(updated_ms), "matched": counts.get("matched"),
            "missing": missing, "experiment": experiment.name}
