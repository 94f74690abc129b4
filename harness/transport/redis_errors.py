"""Translates redis-py exceptions into the harness's transport errors, in one place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError, TryAgainError

from harness.transport.errors import (
    TransportError,
    TransportFenced,
    TransportOutOfMemory,
    TransportReadOnly,
    TransportUnavailable,
)

FENCED_REPLY = "FENCED"  # the prefix of the commit script's error when the lease is not ours
# redis-py quotes a failed pipeline command with its arguments (payloads, checkpoints: raw bytes).
PIPELINE_ECHO = re.compile(r"Command # \d+ \(.*\) of pipeline caused error: ", re.S)


def classify_redis_error(exc: BaseException) -> TransportError | None:
    """The transport error a redis-py exception stands for; None when it is not one of Redis's."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, SlotNotCoveredError):  # a failover under way: the slot's new master is not known yet
        return TransportUnavailable(f"redis cluster unavailable: {_first_line(exc)}")
    if not isinstance(exc, redis.RedisError | RedisClusterException):
        return None
    message = _first_line(exc)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
        return TransportUnavailable(f"redis unavailable: {message}")
    if isinstance(exc, ClusterDownError | TryAgainError):  # redis-py strips their CLUSTERDOWN/TRYAGAIN prefix
        return TransportUnavailable(f"redis cluster unavailable: {message}")
    if not isinstance(exc, redis.RedisError):  # a cross-slot command or script: a harness bug, never a store fault
        return TransportError(f"redis cluster refused: {message}")
    if isinstance(exc, redis.ReadOnlyError) or message.startswith("READONLY"):
        return TransportReadOnly(f"redis is read-only: {message}")
    if isinstance(exc, redis.OutOfMemoryError) or "OOM command not allowed" in message:
        return TransportOutOfMemory(f"redis is out of memory: {message}")
    if FENCED_REPLY in message:
        return TransportFenced(message[message.index(FENCED_REPLY):])
    if message.startswith(("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")):
        return TransportUnavailable(f"redis is busy: {message}")
    return TransportError(f"redis error: {message}")


@contextmanager
def translated() -> Iterator[None]:
    """Run Redis calls; any redis-py error leaves as the matching TransportError."""
    try:
        yield
    except (redis.RedisError, RedisClusterException) as exc:
        error = classify_redis_error(exc)
        assert error is not None
        raise error from exc


def _first_line(exc: BaseException) -> str:
    # Redis error texts can carry a script body after the first line; one line is what a log needs.
    text = PIPELINE_ECHO.sub("", str(exc)) or type(exc).__name__
    return text.splitlines()[0][:300]
