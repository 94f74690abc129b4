"""`harness retire`: delete a worker's consumer group and the keys it owns, once nothing can need them."""

from __future__ import annotations

import contextlib

import redis

from harness import audit, experiments
from harness.cutover.plan import CutoverRefused, StepHook, no_hook, window_left_ms
from harness.cutover.progress import when
from harness.cutover.stoppers import alive
from harness.transport import keys
from harness.transport.replies import server_time_ms, text
from harness.transport.roles import Roles, group_lag, read_roles

RETIRE_STEPS = ("group", "state", "done")
DELETE_BATCH = 500  # keys per DEL while retiring a worker's state


def retire(client: redis.Redis, worker: str, input_stream: str, force_reason: str | None = None,
           who: str | None = None, after_step: StepHook = no_hook) -> int:
    """Delete a retired worker's consumer group and the keys it owns; the count is of this run.

    Each step is idempotent, so a re-run after a crash completes it. Retiring the previous primary
    ends the rollback window: a rollback to it is refused from then on.
    """
    try:
        owned = keys.worker_state_keys(worker)
    except ValueError as exc:
        raise CutoverRefused(str(exc)) from None
    roles = read_roles(client)
    _check_retire(client, worker, input_stream, roles, force_reason)
    client.hset(keys.RETIRED_KEY, worker, int(server_time_ms(client)))
    if roles.previous == worker:
        client.hdel(keys.ROLES_KEY, "rollback_until_ms")  # nothing left to roll back to
    experiments.on_retire(client, worker)  # a retired worker is no longer compared
    removed = 0
    with contextlib.suppress(redis.ResponseError):  # no such stream or group: already retired
        removed += int(client.xgroup_destroy(input_stream, worker))
    after_step("group")
    removed += _delete_keys(client, owned)
    after_step("state")
    audit.record(client, "retire", "done", roles.epoch, who=who, worker=worker, reason=force_reason,
                 removed=str(removed))
    after_step("done")
    return removed


def _check_retire(client: redis.Redis, worker: str, stream: str, roles: Roles, force_reason: str | None) -> None:
    if roles.primary == worker:
        raise CutoverRefused(f"cannot retire {worker}: it is the primary (epoch {roles.epoch}); "
                             f"cut over to another worker first")
    if not _known(client, worker, stream):
        raise CutoverRefused(f"unknown worker {worker!r}: no consumer group on {stream}, no lease, no heartbeat "
                             f"and no results under that name")
    if alive(client, worker):
        holder = text(client.get(keys.lease_key(worker)) or b"").partition(" ")[2]
        raise CutoverRefused(f"cannot retire {worker}: a live process holds its lease ({holder or 'unknown'}); "
                             f"stop it first")
    left_ms = window_left_ms(client, roles) if roles.previous == worker else None
    if left_ms is not None and left_ms > 0 and force_reason is None:
        raise CutoverRefused(f"the rollback window to {worker} is open until {when(roles.rollback_until_ms)} "
                             f"({left_ms / 1000:.0f}s more); --force --reason TEXT overrides")


def _known(client: redis.Redis, worker: str, stream: str) -> bool:
    if group_lag(client, stream, worker, limit=1) is not None or client.hexists(keys.RETIRED_KEY, worker):
        return True
    return bool(client.exists(keys.heartbeat_key(worker), keys.lease_key(worker), keys.results_stream(worker)))


def _delete_keys(client: redis.Redis, owned: keys.WorkerKeys) -> int:
    removed = int(client.delete(*owned.exact))
    for pattern in owned.patterns:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                removed += int(client.delete(*batch))
                batch.clear()
        if batch:
            removed += int(client.delete(*batch))
    return removed
