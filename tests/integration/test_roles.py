"""The switch of the primary and the process backend, against a real redis-server."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import redis

from harness.cutover.roles import RolesError, read_roles, switch_primary
from harness.cutover.stoppers import ProcessStopper
from harness.transport import keys
from tests.support.processes import child_pids, wait_for


def input_entries(client: redis.Redis, count: int) -> list[str]:
    return [client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: b"x"}).decode() for _ in range(count)]


def write_results(client: redis.Redis, worker: str, entries: list[str]) -> None:
    for entry in entries:
        payload = msgpack.packb({"v": 1, "id": f"sig-{entry}", "entry": entry, "outcome": "clustered"})
        client.xadd(keys.results_stream(worker), {keys.PAYLOAD_FIELD: payload})


def test_switch_copies_what_the_new_primary_is_ahead_by(redis_client: redis.Redis) -> None:
    entries = input_entries(redis_client, 9)
    redis_client.hset(keys.ROLES_KEY, mapping={"primary": "legacy", "epoch": 1, "watermark": entries[2]})
    write_results(redis_client, "candidate", entries)  # the candidate is ahead: it clustered all nine

    roles = switch_primary(redis_client, "candidate")

    assert (roles.primary, roles.epoch, roles.watermark, roles.previous) == ("candidate", 2, entries[8], "legacy")
    copied = [fields[b"entry"].decode() for _, fields in redis_client.xrange(keys.PRODUCTION_STREAM)]
    assert copied == entries[3:], "exactly the entries past the watermark, in order"


def test_switch_refuses_when_the_new_primary_lacks_results_past_the_watermark(redis_client: redis.Redis) -> None:
    entries = input_entries(redis_client, 9)
    redis_client.hset(keys.ROLES_KEY, mapping={"primary": "legacy", "epoch": 1, "watermark": entries[2]})
    write_results(redis_client, "candidate", entries[6:])  # it started later: nothing for entries 4 to 6

    with pytest.raises(RolesError, match=entries[3]):
        switch_primary(redis_client, "candidate")
    assert read_roles(redis_client).primary == "legacy"
    assert redis_client.xlen(keys.PRODUCTION_STREAM) == 0


def test_process_backend_never_starts_a_second_copy_of_a_live_worker(redis_url: str, redis_client: redis.Redis,
                                                                     tmp_path: Path) -> None:
    # The start command's only visible effect: one signal on the input stream.
    stopper = ProcessStopper(["produce", "--redis-url", redis_url, "--count", "1"], log_dir=tmp_path)
    redis_client.set(keys.lease_key("legacy"), "1 otherhost 4242")  # a live legacy holds its lease
    before = child_pids()
    stopper.start(redis_client, "legacy")
    # start() spawns synchronously: had it started a copy, the child would exist now.
    assert child_pids() - before == set(), "a live worker was started again"

    redis_client.delete(keys.lease_key("legacy"))  # its lease is gone: nothing runs, start it
    log = stopper.start(redis_client, "legacy")
    assert len(child_pids() - before) == 1, "exactly one process started"
    wait_for(lambda: redis_client.xlen(keys.DEFAULT_INPUT_STREAM) == 1, 30, "the started process")
    assert log is not None and Path(log).parent == tmp_path, "its output goes to a log file"
