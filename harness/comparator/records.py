"""Raw results-stream entries decoded for the comparator: a batch in one pass, the odd entry one by one."""

from __future__ import annotations

from typing import Any

import msgpack
from msgpack import unpackb as _unpackb

from harness.transport import keys


def payload(fields: Any) -> bytes:
    """The `data` value of a raw stream entry ([field, value, ...] or a map); b'' when absent."""
    if isinstance(fields, dict):
        return bytes(fields.get(keys.PAYLOAD_FIELD, b""))
    if fields and fields[0] == keys.PAYLOAD_FIELD:
        return bytes(fields[1])
    pairs = dict(zip(fields[::2], fields[1::2], strict=True)) if fields else {}
    return bytes(pairs.get(keys.PAYLOAD_FIELD, b""))


def decode_batch(entries: list[Any]) -> list[Any]:
    """Decode a batch of results; the common case in one comprehension, the odd entry one by one."""
    try:
        records = [_unpackb(fields[1], raw=False) for _, fields in entries]
        if all(fields[0] == keys.PAYLOAD_FIELD for _, fields in entries):
            return records  # rows (the wire form) or maps: the state reads both, and rejects the rest
    except Exception:
        pass  # a malformed entry in the batch: take the careful path below
    return [_unpack(payload(fields)) for _, fields in entries]


def _unpack(payload: bytes) -> Any:
    # A result that breaks the contract is counted as `rejected` by the state, not dropped.
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception:
        return {"id": None}
