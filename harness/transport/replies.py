"""Small helpers for Redis replies: bytes to text, stream entry ids, the server's clock."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """'1700000000000-3' -> (1700000000000, 3); a bare '0' is (0, 0)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_after(a: str, b: str) -> bool:
    return parse_entry_id(a) > parse_entry_id(b)


def server_time_ms(client: Any) -> float:
    """The Redis server's clock (TIME), in epoch milliseconds: the one clock every host shares."""
    seconds, micros = client.time()
    return float(seconds * 1000.0 + micros / 1000.0)
