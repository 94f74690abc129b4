"""The audit trail: each cutover step and each dead-letter replay or purge; who, when, under which epoch, why."""

from __future__ import annotations

import getpass
import json
import socket
import time
from typing import Any

import redis

from harness.transport import keys


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def record(client: redis.Redis, action: str, step: str, epoch: int, **details: Any) -> None:
    entry: dict[str, str] = {
        "action": action, "step": step, "who": str(details.pop("who", None) or actor()),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epoch": str(epoch),
    }
    for key, value in details.items():
        if value is not None:
            entry[key] = value if isinstance(value, str) else json.dumps(value)
    client.xadd(keys.AUDIT_STREAM, entry)


def recent(client: redis.Redis, count: int = 10) -> list[dict[str, str]]:
    rows = client.xrevrange(keys.AUDIT_STREAM, count=count)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in reversed(rows)]
