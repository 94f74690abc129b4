"""What `harness status` shows: roles, each consumer group's lag and state, the last audit entries."""

from __future__ import annotations

from typing import Any

import redis

from harness.cutover.audit import recent
from harness.cutover.stoppers import heartbeat
from harness.transport import keys
from harness.transport.replies import text
from harness.transport.roles import drain_requested, group_lag, read_roles


def status(client: redis.Redis, input_stream: str = keys.DEFAULT_INPUT_STREAM) -> dict[str, Any]:
    roles = read_roles(client)
    groups: dict[str, dict[str, Any]] = {}
    try:
        infos = client.xinfo_groups(input_stream)
    except redis.ResponseError:
        infos = []
    for info in infos:
        name = text(info["name"])
        beat = heartbeat(client, name)
        groups[name] = {"lag": group_lag(client, input_stream, name), "pending": int(info["pending"]),
                        "state": beat.get("state", "unknown"), "model_version": beat.get("model_version"),
                        "draining": drain_requested(client, name)}
    return {"roles": vars(roles), "groups": groups, "audit": recent(client, 10)}
