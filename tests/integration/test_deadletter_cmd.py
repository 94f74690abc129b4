"""`harness deadletter list|show|replay|purge` on the dead letters of a real worker in a real Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import redis
from click.testing import CliRunner, Result

from harness import audit
from harness.cli.main import cli
from harness.deadletters import REPLAY_FIELD
from harness.transport import keys
from tests.support.processes import results, start_worker, stop, wait_for

BY_DEVICE = "tests.support.algorithms:by_device"
WORKER = "strict"


def message(signal_id: str, samples: int) -> bytes:
    wire = {"v": 1, "id": signal_id, "meta": {"device": "dev-1"}, "rate": 1000.0, "t0": 0.0,
            "samples": np.full(samples, 230.0, dtype="<f4").tobytes()}
    return bytes(msgpack.packb(wire, use_bin_type=True))


# A worker started with --max-samples 10 rejects "long" (50 samples, 200 bytes of them: replayable once the
# limit is raised) and "huge" (5,000 samples: 20 KB, over the dead letter's 4 KiB prefix, so capped).
INPUT = {"garbage": b"\xc1\xff\x00garbage", "long": message("long", 50), "huge": message("huge", 5_000),
         "fine": message("fine", 5)}


def deadletter(*args: str, redis_url: str) -> Result:
    return CliRunner().invoke(cli, ["deadletter", *args, "--worker", WORKER, "--redis-url", redis_url])


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture()
def dead_letters(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> dict[str, str]:
    """The input entry id of each message, after a strict worker has dead-lettered three of them."""
    entries = {name: redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: payload}).decode()
               for name, payload in INPUT.items()}
    worker = start_worker(BY_DEVICE, redis_url, "--name", WORKER, "--max-samples", "10", log=tmp_path / "w.log")
    try:
        wait_for(lambda: len(results(redis_client, WORKER)) >= len(INPUT), 30, "results", [worker])
    finally:
        stop(worker)
    assert redis_client.xlen(keys.dead_letter_stream(WORKER)) == 3
    return entries


def test_list_shows_every_dead_letter_and_filters_by_reason_and_time(
        dead_letters: dict[str, str], redis_url: str) -> None:
    listed = as_json(deadletter("list", "--json", redis_url=redis_url))
    rows = {row["entry"]: row for row in listed["dead_letters"]}
    assert set(rows) == {dead_letters["garbage"], dead_letters["long"], dead_letters["huge"]}
    assert rows[dead_letters["garbage"]]["reason"] == "undecodable"
    long, huge = rows[dead_letters["long"]], rows[dead_letters["huge"]]
    assert (long["reason"], long["signal_id"], long["size"], long["capped"]) == ("oversize", "long",
                                                                                 len(INPUT["long"]), False)
    assert (huge["size"], huge["stored"], huge["capped"]) == (len(INPUT["huge"]), 4096, True)
    assert listed["dropped"] == 0

    def entries(*filters: str) -> set[str]:
        return {row["entry"] for row in as_json(deadletter("list", "--json", *filters,
                                                           redis_url=redis_url))["dead_letters"]}

    assert entries("--reason", "oversize") == {dead_letters["long"], dead_letters["huge"]}
    assert entries("--reason", "oversize", "--reason", "undecodable") == set(rows)
    assert entries("--reason", "duplicate_id") == set()
    assert entries("--since", "1h") == set(rows)
    assert entries("--until", "1h") == set()
    assert entries("--since", "2000-01-01T00:00:00") == set(rows)
    assert entries("--until", "2000-01-01T00:00:00+02:00") == set()

    table = deadletter("list", redis_url=redis_url)
    assert table.exit_code == 0, table.output
    assert "undecodable" in table.output and "(capped)" in table.output and "3 shown" in table.output


def test_a_bad_time_or_id_is_one_line_naming_it(dead_letters: dict[str, str], redis_url: str) -> None:
    bad_time = deadletter("list", "--since", "yesterday-ish", redis_url=redis_url)
    assert bad_time.exit_code == 2
    assert "'yesterday-ish' is not a time" in bad_time.output
    missing = deadletter("show", "1-1", redis_url=redis_url)
    assert missing.exit_code == 1
    assert "no dead letter 1-1 for worker strict" in missing.output


def test_show_decodes_the_payload_and_says_when_it_was_capped(
        dead_letters: dict[str, str], redis_url: str, redis_client: redis.Redis) -> None:
    long = deadletter("show", dead_letters["long"], redis_url=redis_url)  # found by its input entry
    assert long.exit_code == 0, long.output
    assert "payload (msgpack):" in long.output and '"id": "long"' in long.output
    assert "truncated" not in long.output

    dead_id = next(entry_id.decode() for entry_id, fields in redis_client.xrange(keys.dead_letter_stream(WORKER))
                   if fields[b"entry"].decode() == dead_letters["huge"])
    huge = deadletter("show", dead_id, redis_url=redis_url)  # found by its own id
    assert huge.exit_code == 0, huge.output
    assert f"truncated: the first 4,096 of {len(INPUT['huge']):,} bytes" in huge.output
    assert "payload (msgpack prefix):" in huge.output and '"id": "huge"' in huge.output
    shown = as_json(deadletter("show", dead_id, "--json", redis_url=redis_url))
    assert shown["capped"] is True and shown["payload"]["id"] == "huge"


def test_replay_puts_the_fixed_message_back_and_the_worker_clusters_it(
        dead_letters: dict[str, str], redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    input_length = redis_client.xlen(keys.DEFAULT_INPUT_STREAM)
    dry = as_json(deadletter("replay", "--reason", "oversize", "--dry-run", "--json", redis_url=redis_url))
    assert (dry["replayed"], len(dry["not_replayable"])) == (1, 1)
    assert redis_client.xlen(keys.DEFAULT_INPUT_STREAM) == input_length, "a dry run changes nothing"
    assert redis_client.xlen(keys.dead_letter_stream(WORKER)) == 3

    # The fix: the worker now accepts 1,000 samples. The capped message cannot be rebuilt and stays.
    worker = start_worker(BY_DEVICE, redis_url, "--name", WORKER, "--max-samples", "1000", log=tmp_path / "w2.log")
    try:
        replayed = deadletter("replay", "--reason", "oversize", redis_url=redis_url)
        assert replayed.exit_code == 0, replayed.output
        assert f"replayed 1 dead letters of {WORKER} onto {keys.DEFAULT_INPUT_STREAM}" in replayed.output
        assert "1 not replayable" in replayed.output and "harness produce --from" in replayed.output
        wait_for(lambda: any(r.signal_id == "long" and r.outcome == "clustered"
                             for r in results(redis_client, WORKER)), 30, "the replayed result", [worker])
    finally:
        stop(worker)
    [(_, fields)] = redis_client.xrange(keys.DEFAULT_INPUT_STREAM, min="(" + dead_letters["fine"])
    assert fields[keys.PAYLOAD_FIELD] == INPUT["long"]
    assert int(redis_client.get(keys.PRODUCED_KEY) or 0) == 1, "the produced count includes the replayed entry"
    assert fields[REPLAY_FIELD.encode()].decode() == dead_letters["long"]
    left = {fields[b"entry"].decode() for _, fields in redis_client.xrange(keys.dead_letter_stream(WORKER))}
    assert left == {dead_letters["garbage"], dead_letters["huge"]}, "replayed means gone from the dead letters"

    again = as_json(deadletter("replay", "--reason", "oversize", "--json", redis_url=redis_url))
    assert again["replayed"] == 0, "nothing is replayed twice"
    assert [row["entry"] for row in again["not_replayable"]] == [dead_letters["huge"]]
    trail = [row for row in audit.recent(redis_client) if row["action"] == "deadletters"]
    assert [(row["step"], row["worker"], row["count"], row["reasons"]) for row in trail] == [
        ("replay", WORKER, "1", "oversize"), ("replay", WORKER, "0", "oversize")], "a dry run leaves no trace"
    assert trail[0]["input_stream"] == keys.DEFAULT_INPUT_STREAM and trail[0]["who"]


def test_purge_needs_yes_and_deletes_only_what_the_filters_select(
        dead_letters: dict[str, str], redis_url: str, redis_client: redis.Redis) -> None:
    refused = deadletter("purge", "--reason", "undecodable", redis_url=redis_url)
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    assert redis_client.xlen(keys.dead_letter_stream(WORKER)) == 3

    purged = deadletter("purge", "--reason", "undecodable", "--yes", redis_url=redis_url)
    assert purged.exit_code == 0, purged.output
    assert f"purged 1 dead letters of {WORKER}" in purged.output
    left = {fields[b"reason"] for _, fields in redis_client.xrange(keys.dead_letter_stream(WORKER))}
    assert left == {b"oversize"}
    assert "purged 2 dead letters" in deadletter("purge", "--yes", redis_url=redis_url).output
    assert redis_client.xlen(keys.dead_letter_stream(WORKER)) == 0
    trail = [row for row in audit.recent(redis_client) if row["action"] == "deadletters"]
    assert [(row["step"], row["count"], row["reasons"]) for row in trail] == [
        ("purge", "1", "undecodable"), ("purge", "2", "any")], "a refused purge leaves no trace"
