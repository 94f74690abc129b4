"""Heartbeat and drain flag: how a running worker is seen by, and stopped by, the cutover."""

from __future__ import annotations

import os
import socket
import time

import redis

from harness.transport import keys

DRAIN = "drain"
HEARTBEAT_EVERY_S = 1.0


class WorkerControl:
    def __init__(self, client: redis.Redis, worker: str, model_version: str) -> None:
        self._client = client
        self._worker = worker
        self._model_version = model_version
        self._last_beat = 0.0
        self._started_ms = int(time.time() * 1000)

    def drain_requested(self) -> bool:
        return bool(self._client.get(keys.control_key(self._worker)) == DRAIN.encode())

    def beat(self, state: str = "running", force: bool = False) -> bool:
        """Write the heartbeat if one is due (or forced); returns whether it was written."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_EVERY_S:
            return False
        self._last_beat = now
        self._client.hset(keys.heartbeat_key(self._worker), mapping={
            "pid": os.getpid(), "host": socket.gethostname(), "state": state,
            "model_version": self._model_version, "started_ms": self._started_ms,
            "last_seen_ms": int(time.time() * 1000),
        })
        return True

    def claim_primary_if_unset(self) -> bool:
        """First deployment: make this worker primary (epoch 1) unless roles already exist."""
        created = self._client.hsetnx(keys.ROLES_KEY, "primary", self._worker)
        if created:
            self._client.hset(keys.ROLES_KEY, mapping={"epoch": 1, "watermark": "0-0",
                                                       "switched_at_ms": int(time.time() * 1000)})
        return bool(created)
