"""Safe trimming of a stream: never drop an entry that some consumer group has not read and acked.

The safe point is the oldest entry that any group still needs: its oldest pending entry, or the
entry after its last-delivered id (or after its checkpointed cursor, for a reader that acks by
checkpoint, like the comparator). Everything strictly older was delivered to and acked by every
group, so `XTRIM MINID` at that point loses nothing. With no group at all, nothing is trimmed.
"""

from __future__ import annotations

import redis

from harness.transport import keys
from harness.transport.replies import parse_entry_id, text


def safe_trim_point(client: redis.Redis, stream: str, min_groups: int = 1) -> str | None:
    """The MINID below which every group is done, or None when nothing may be trimmed."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    if len(groups) < min_groups or not groups:
        return None
    needed: list[tuple[int, int]] = []
    # A reader that acknowledges by checkpoint (the comparator) still needs what follows its cursor,
    # even where its group has already delivered further.
    cursors = {text(k): text(v) for k, v in client.hgetall(keys.reader_cursors_key(stream)).items()}
    for group in groups:
        name = text(group["name"])
        ms, seq = parse_entry_id(text(group["last-delivered-id"]))
        if name in cursors:
            ms, seq = min((ms, seq), parse_entry_id(cursors[name]))
        needed.append((ms, seq + 1))
        if int(group["pending"]) > 0:
            summary = client.xpending(stream, name)
            needed.append(parse_entry_id(text(summary["min"])))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


def trim_stream(client: redis.Redis, stream: str, min_groups: int = 1) -> int:
    """Trim what every consumer group has finished with; returns the number of entries removed."""
    point = safe_trim_point(client, stream, min_groups)
    if point is None:
        return 0
    return int(client.execute_command("XTRIM", stream, "MINID", point))
