"""The handover of production: a new primary under a new epoch (the fencing token).

The roles hash itself is read by harness.transport.roles.

Exactly one production result per input entry, across a switch:
- workers publish to production only inside the commit script, which checks `primary` and
  skips entries at or below the production `watermark` (already published by someone);
- the switch is one Lua script (switch_script.py): if the roles are still as the client read
  them, it copies to production the new primary's results past the watermark (entries it
  clustered as a shadow while the old primary had not reached them yet, listed by the client
  and then whatever came since), and moves `primary`, `epoch` and `watermark`, atomically. If the
  old primary committed meanwhile, the client reads the news and tries again.
"""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from harness.contracts import RESULT_KEYS, decode_clustered
from harness.cutover.switch_script import SWITCH_SCRIPT
from harness.errors import HarnessError
from harness.partitions import Partition, all_partitions
from harness.security import grants
from harness.transport import keys
from harness.transport.replies import entry_after, parse_entry_id, server_time_ms, text
from harness.transport.roles import Roles as Roles  # re-exported: callers knew them here
from harness.transport.roles import read_roles as read_roles


class RolesError(RuntimeError, HarnessError):
    pass


class _Backfill:
    """The target's results past the production watermark, read once and then only what is new.

    A switch is an optimistic transaction that both workers' commits keep invalidating; reading the
    whole backlog (and checking it against the input) inside every attempt made a switch behind a
    slow primary take forever. Here each attempt reads only results and input entries it has not
    seen, so the window between WATCH and EXEC stays short however large the backlog is."""

    def __init__(self, results_stream: str, input_stream: str) -> None:
        self._stream = results_stream
        self._input = input_stream
        self._results: dict[str, str] = {}  # input entry -> id of the target's result for it
        self._read_until: str | None = None  # the newest results-stream id read
        self._covered_until = "0-0"  # every input entry up to here has a result in _results

    @property
    def read_until(self) -> str:
        return self._read_until or "0-0"

    def refresh(self, client: Any, watermark: str) -> list[tuple[str, str]]:
        """Read what is new; (input entry, result id) past `watermark`, oldest first, one per entry."""
        if self._read_until is None:
            self._read_backwards(client, watermark)
        else:
            for stream_id, fields in client.xrange(self._stream, min=f"({self._read_until}", max="+"):
                self._keep(text(stream_id), fields[keys.PAYLOAD_FIELD], watermark)
                self._read_until = text(stream_id)
        return sorted(((entry, result_id) for entry, result_id in self._results.items()
                       if entry_after(entry, watermark)), key=lambda item: parse_entry_id(item[0]))

    def _read_backwards(self, client: Any, watermark: str) -> None:
        upper = "+"
        while chunk := client.xrevrange(self._stream, max=upper, count=500):
            if self._read_until is None:
                self._read_until = text(chunk[0][0])
            for stream_id, fields in chunk:
                if not self._keep(text(stream_id), fields[keys.PAYLOAD_FIELD], watermark):
                    return
            upper = "(" + text(chunk[-1][0])
        self._read_until = self._read_until or "0-0"

    def _keep(self, result_id: str, payload: bytes, watermark: str) -> bool:
        entry = decode_clustered(payload).input_entry_id
        if not entry or not entry_after(entry, watermark):
            return False
        self._results.setdefault(entry, result_id)
        return True

    def first_gap(self, client: Any, watermark: str, backfill: list[tuple[str, str]]) -> str | None:
        """An input entry between the watermark and the end of the backfill with no target result."""
        if not backfill:
            return None
        start = self._covered_until if entry_after(self._covered_until, watermark) else watermark
        end = backfill[-1][0]
        while entry_after(end, start):
            # Ids only, listed by the server: the input's payloads would cost megabytes per thousand entries.
            chunk = [text(entry_id) for entry_id in client.eval(_ENTRY_IDS_SCRIPT, 1, self._input, f"({start}",
                                                                 end, 5000)]
            if not chunk:
                break
            for entry in chunk:
                if entry not in self._results:
                    return entry
                start = entry
        self._covered_until = start
        return None


_ENTRY_IDS_SCRIPT = """
local ids = {}
for i, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])) do ids[i] = entry[1] end
return ids
"""


SWITCH_ATTEMPTS = 2_000  # optimistic retries while the workers keep committing under the WATCH


def switch_primary(client: redis.Redis, target: str, rollback_window_s: float | None = None,
                   input_stream: str = keys.DEFAULT_INPUT_STREAM, partitions: int = 1) -> Roles:
    """Make `target` primary under a new epoch, handing over production without loss or double.

    Under ACL users (HARNESS_ACL_USERS), the production grant moves too: to `target` before the
    switch, away from every other worker after it; a re-run after a crash repeats both. With a
    partitioned input, every partition is switched under the one epoch (switch_partitions).
    """
    if partitions > 1:
        return switch_partitions(client, target, rollback_window_s, input_stream, partitions)
    grants.grant_production(client, target, input_stream)
    roles = _switch(client, target, rollback_window_s, input_stream)
    grants.revoke_production(client, target, input_stream)
    return roles


def switch_partitions(client: redis.Redis, target: str, rollback_window_s: float | None, input_stream: str,
                      partitions: int) -> Roles:
    """One epoch across P partitions (docs/partitions.md): record the intent in the global roles, switch
    each partition's roles with the one-partition script (each partition's production stays exactly-once
    on its own), then record the new primary. A re-run after a crash finds the intent and completes it."""
    before = read_roles(client)
    intent = {text(k): text(v) for k, v in client.hgetall(keys.ROLES_KEY).items()}
    if before.primary == target and "switching_to" not in intent:
        return before
    epoch = int(intent["switching_epoch"]) if intent.get("switching_to") == target else before.epoch + 1
    client.hset(keys.ROLES_KEY, mapping={"switching_to": target, "switching_epoch": epoch})
    for partition in all_partitions(partitions):
        switched = _switch(client, target, rollback_window_s, input_stream, partition)
        if switched.epoch != epoch:
            raise RolesError(f"partition {partition} reached epoch {switched.epoch}, not {epoch}: its roles were "
                             f"changed outside a cutover; set them right, then run it again")
    now_ms = int(server_time_ms(client))
    mapping: dict[str, str | int] = {"primary": target, "epoch": epoch, "switched_at_ms": now_ms,
                                     "previous": before.primary or "", "watermark": "per-partition"}
    if rollback_window_s is not None:
        mapping["rollback_until_ms"] = now_ms + int(rollback_window_s * 1000)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(keys.ROLES_KEY, mapping=mapping)
        if rollback_window_s is None:
            pipe.hdel(keys.ROLES_KEY, "rollback_until_ms")
        pipe.hdel(keys.ROLES_KEY, "switching_to", "switching_epoch")
        pipe.execute()
    return read_roles(client)


def _switch(client: redis.Redis, target: str, rollback_window_s: float | None, input_stream: str,
            partition: Partition | None = None) -> Roles:
    roles_key, production = keys.scoped(keys.ROLES_KEY, partition), keys.scoped(keys.PRODUCTION_STREAM, partition)
    results = keys.scoped(keys.results_stream(target), partition)
    backfill_reader = _Backfill(results, keys.scoped(input_stream, partition))
    switch = client.register_script(SWITCH_SCRIPT)
    entry_at = RESULT_KEYS.index("entry") + 1  # Lua arrays count from 1
    for _attempt in range(SWITCH_ATTEMPTS):
        current = read_roles(client, partition)
        if current.primary == target:
            return current
        backfill = backfill_reader.refresh(client, current.watermark)
        gap = backfill_reader.first_gap(client, current.watermark, backfill)
        if gap is not None:
            raise RolesError(
                f"{target} has no result for input entry {gap}, past the production watermark "
                f"{current.watermark} (it started later than {current.primary}, or its results were "
                f"trimmed): switching now would leave that signal without a production result; "
                f"wait until {current.primary} has passed {backfill[-1][0]}, then run it again")
        window_ms = "" if rollback_window_s is None else str(int(rollback_window_s * 1000))
        pairs = [value for entry, result_id in backfill for value in (result_id, entry)]
        outcome = switch(keys=[roles_key, results, production], args=[
            target, current.primary or "", current.epoch, current.watermark, backfill_reader.read_until,
            keys.PRODUCTION_CHANNEL, entry_at, int(server_time_ms(client)), window_ms, *pairs])
        if int(outcome[0]) == 1:
            return read_roles(client, partition)
        time.sleep(random.uniform(0.001, 0.005))  # the old primary committed meanwhile: read its news
    raise RolesError(f"could not switch to {target}: the roles kept changing over {SWITCH_ATTEMPTS} attempts; "
                     "run it again")
