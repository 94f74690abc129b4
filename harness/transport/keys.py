"""Redis key names, in one place so every component agrees on them."""

from __future__ import annotations

DEFAULT_INPUT_STREAM = "harness:signals"
DEFAULT_INPUT_CHANNEL = "harness:signals:live"
PAYLOAD_FIELD = b"data"  # the stream entry field that carries one encoded message


def results_stream(worker: str) -> str:
    return f"harness:results:{worker}"


def dead_letter_stream(worker: str) -> str:
    return f"harness:deadletter:{worker}"


def seen_key(worker: str, signal_id: str) -> str:
    return f"harness:seen:{worker}:{signal_id}"


def state_prefix(worker: str) -> str:
    return f"harness:state:{worker}:"

ROLES_KEY = "harness:roles"  # hash: primary, epoch (the fencing token), watermark, switched_at_ms
PRODUCTION_STREAM = "harness:production"  # what downstream consumers read: the primary's results
PRODUCTION_CHANNEL = "harness:production:live"  # the same results, for pub/sub consumers
AUDIT_STREAM = "harness:audit"
PRODUCED_KEY = "harness:stats:produced"  # signals sent by `harness produce`, for the report's counts
CUTOVER_KEY = "harness:cutover"  # hash: progress of the running or last cutover, for idempotent re-runs


def control_key(worker: str) -> str:
    """'drain' here tells the worker to finish its batch, ack it and exit (set by the cutover)."""
    return f"harness:control:{worker}"


def heartbeat_key(worker: str) -> str:
    return f"harness:workers:{worker}"


def reader_cursors_key(stream: str) -> str:
    """Hash group -> last entry counted, for readers that checkpoint instead of acking (comparator)."""
    return f"harness:cursors:{stream}"
