"""Raw results-stream entries decoded for the comparator: a batch in one pass, the odd entry one by one."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import msgpack
from msgpack import unpackb as _unpackb

from harness.transport import keys

_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def payload(fields: Any) -> bytes:
    """The `data` value of a raw stream entry ([field, value, ...] or a map); b'' when absent."""
    if isinstance(fields, dict):
        return bytes(fields.get(keys.PAYLOAD_FIELD, b""))
    if fields and fields[0] == keys.PAYLOAD_FIELD:
        return bytes(fields[1])
    pairs = dict(zip(fields[::2], fields[1::2], strict=True)) if fields else {}
    return bytes(pairs.get(keys.PAYLOAD_FIELD, b""))


def decode_batch(entries: list[Any]) -> list[Any]:
    """Decode a batch of results; the common case in one pass, the odd entry one by one."""
    try:
        # map() with C callables throughout: no Python frame per entry
        field_lists = list(map(_SECOND, entries))
        if list(map(_FIRST, field_lists)).count(keys.PAYLOAD_FIELD) == len(entries):
            # rows (the wire form) or maps: the state reads both, and rejects the rest
            return list(map(_unpackb, map(_SECOND, field_lists)))  # raw=False is msgpack's default
    except Exception:
        pass  # a malformed entry in the batch: take the careful path below
    return [_unpack(payload(fields)) for _, fields in entries]


def _unpack(payload: bytes) -> Any:
    # A result that breaks the contract is counted as `rejected` by the state, not dropped.
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception:
        return {"id": None}
