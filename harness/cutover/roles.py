"""The handover of production: a new primary under a new epoch (the fencing token).

The roles hash itself is read by harness.transport.roles.

Exactly one production result per input entry, across a switch:
- workers publish to production only inside the commit script, which checks `primary` and
  skips entries at or below the production `watermark` (already published by someone);
- the switch runs under WATCH on the roles hash and the new primary's results stream. It
  copies to production the new primary's results past the watermark (entries it clustered as
  a shadow while the old primary had not reached them yet), then moves `primary`, `epoch` and
  `watermark` in the same MULTI/EXEC. If either key changes meanwhile, it starts again.
"""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from harness.contracts import decode_clustered
from harness.errors import HarnessError
from harness.security import grants
from harness.transport import keys
from harness.transport.replies import entry_after, parse_entry_id, server_time_ms, text
from harness.transport.roles import Roles as Roles  # re-exported: callers knew them here
from harness.transport.roles import read_roles as read_roles


class RolesError(RuntimeError, HarnessError):
    pass


def _unpublished_results(pipe: Any, worker: str, watermark: str) -> list[tuple[str, bytes]]:
    """The worker's results for input entries past the watermark, oldest first, one per entry."""
    found: dict[str, bytes] = {}
    upper = "+"
    while True:
        chunk = pipe.xrevrange(keys.results_stream(worker), max=upper, count=500)
        if not chunk:
            break
        for _stream_id, fields in chunk:
            payload = fields[keys.PAYLOAD_FIELD]
            entry = decode_clustered(payload).input_entry_id
            if not entry or not entry_after(entry, watermark):
                return sorted(found.items(), key=lambda item: parse_entry_id(item[0]))
            found.setdefault(entry, payload)
        upper = "(" + text(chunk[-1][0])
    return sorted(found.items(), key=lambda item: parse_entry_id(item[0]))


def _first_gap(pipe: Any, input_stream: str, watermark: str, backfill: list[tuple[str, bytes]]) -> str | None:
    """An input entry between the watermark and the end of the backfill that the target has no result for."""
    if not backfill:
        return None
    covered = {entry for entry, _ in backfill}
    entries = pipe.xrange(input_stream, min=f"({watermark}", max=backfill[-1][0], count=len(backfill) + 1)
    return next((text(entry_id) for entry_id, _ in entries if text(entry_id) not in covered), None)


SWITCH_ATTEMPTS = 2_000  # optimistic retries while the workers keep committing under the WATCH


def switch_primary(client: redis.Redis, target: str, rollback_window_s: float | None = None,
                   input_stream: str = keys.DEFAULT_INPUT_STREAM) -> Roles:
    """Make `target` primary under a new epoch, handing over production without loss or double.

    Under ACL users (HARNESS_ACL_USERS), the production grant moves too: to `target` before the
    switch, away from every other worker after it; a re-run after a crash repeats both.
    """
    grants.grant_production(client, target, input_stream)
    roles = _switch(client, target, rollback_window_s, input_stream)
    grants.revoke_production(client, target, input_stream)
    return roles


def _switch(client: redis.Redis, target: str, rollback_window_s: float | None, input_stream: str) -> Roles:
    with client.pipeline(transaction=True) as pipe:
        for _attempt in range(SWITCH_ATTEMPTS):
            try:
                pipe.watch(keys.ROLES_KEY, keys.results_stream(target))
                current = read_roles(pipe)
                if current.primary == target:
                    pipe.unwatch()
                    return current
                backfill = _unpublished_results(pipe, target, current.watermark)
                gap = _first_gap(pipe, input_stream, current.watermark, backfill)
                if gap is not None:
                    pipe.unwatch()
                    raise RolesError(
                        f"{target} has no result for input entry {gap}, past the production watermark "
                        f"{current.watermark} (it started later than {current.primary}, or its results were "
                        f"trimmed): switching now would leave that signal without a production result; "
                        f"wait until {current.primary} has passed {backfill[-1][0]}, then run it again")
                epoch = current.epoch + 1
                now_ms = int(server_time_ms(pipe))
                watermark = backfill[-1][0] if backfill else current.watermark
                pipe.multi()
                for entry, payload in backfill:
                    pipe.xadd(keys.PRODUCTION_STREAM,
                              {keys.PAYLOAD_FIELD: payload, "epoch": epoch, "entry": entry, "worker": target})
                    pipe.publish(keys.PRODUCTION_CHANNEL, payload)
                mapping: dict[str, str | int] = {
                    "primary": target, "epoch": epoch, "watermark": watermark, "switched_at_ms": now_ms,
                    "previous": current.primary or "",
                }
                if rollback_window_s is not None:
                    mapping["rollback_until_ms"] = now_ms + int(rollback_window_s * 1000)
                pipe.hset(keys.ROLES_KEY, mapping=mapping)
                pipe.execute()
                return read_roles(client)
            except redis.WatchError:
                time.sleep(random.uniform(0.001, 0.005))
    raise RolesError(f"could not switch to {target}: the roles or its results kept changing over "
                     f"{SWITCH_ATTEMPTS} attempts; run it again")
