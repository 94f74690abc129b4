"""A cutover and a rollback across P = 4 partitions, with two replicas per worker, under a live input:
one epoch covers the switch, and every signal gets exactly one production result across partitions."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from pathlib import Path

import redis

from harness.partitions import all_partitions
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import connection, keys, presence
from harness.transport.roles import production_summary, read_roles
from tests.integration.test_cutover import harness
from tests.support.processes import start_worker, stop, wait_for

PARTITIONS = 4
RATE = 300


def production(client: redis.Redis) -> Counter[str]:
    """Input entry -> production results, over every partition (an entry id is unique within its partition)."""
    found: Counter[str] = Counter()
    for partition in all_partitions(PARTITIONS):
        for _, fields in client.xrange(keys.scoped(keys.PRODUCTION_STREAM, partition)):
            found[f"{partition.index}/{fields[b'entry'].decode()}"] += 1
    return found


def inputs(client: redis.Redis) -> list[str]:
    return [f"{partition.index}/{entry_id.decode()}" for partition in all_partitions(PARTITIONS)
            for entry_id, _ in client.xrange(keys.scoped(keys.DEFAULT_INPUT_STREAM, partition))]


def test_a_cutover_and_a_rollback_across_partitions_give_each_signal_exactly_one_production_result(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    stopping = threading.Event()
    flow = threading.Thread(target=lambda: publish_signals(
        connection.redis_client(redis_url), itertools.takewhile(lambda _: not stopping.is_set(),
                                                             generate_signals(100_000, seed=1, samples=128)),
        keys.DEFAULT_INPUT_STREAM, rate=RATE, partitions=PARTITIONS), daemon=True)
    common = ("--partitions", str(PARTITIONS), "--lease-ttl", "2", "--block-ms", "100")
    workers = [start_worker("legacy", redis_url, *common, "--init-primary", log=tmp_path / f"legacy{n}.log")
               for n in range(2)]
    workers += [start_worker("candidate", redis_url, *common, log=tmp_path / f"candidate{n}.log") for n in range(2)]
    flow.start()
    try:
        wait_for(lambda: sum(production(redis_client).values()) >= 300, 60, "legacy feeding production", workers)
        wait_for(lambda: len(presence.lease_holders(redis_client, "candidate", PARTITIONS)) == PARTITIONS
                 and presence.input_lag(redis_client, keys.DEFAULT_INPUT_STREAM, "candidate", PARTITIONS) is not None,
                 60, "the candidate serving every partition", workers)
        assert read_roles(redis_client).primary == "legacy"
        switched = harness("cutover", "--redis-url", redis_url, "--partitions", str(PARTITIONS), "--to", "candidate",
                           "--from", "legacy", "--force", "--reason", "test", "--stop-with", "none",
                           "--drain-timeout", "30")
        assert switched.returncode == 0, switched.stderr + switched.stdout
        roles = read_roles(redis_client)
        assert (roles.primary, roles.previous) == ("candidate", "legacy")
        assert {read_roles(redis_client, p).epoch for p in all_partitions(PARTITIONS)} == {roles.epoch}
        assert {read_roles(redis_client, p).primary for p in all_partitions(PARTITIONS)} == {"candidate"}
        shown = harness("status", "--redis-url", redis_url, "--partitions", str(PARTITIONS), "--json")
        assert shown.returncode == 0, shown.stderr
        groups = json.loads(shown.stdout)["groups"]
        assert f"hold {PARTITIONS}/{PARTITIONS} partitions" in groups["candidate"]["lease_holder"]
        assert groups["legacy"]["draining"] and groups["candidate"]["lag"] is not None
        before = sum(production(redis_client).values())
        wait_for(lambda: sum(production(redis_client).values()) >= before + 300, 60, "candidate feeding production",
                 workers)
        back = harness("rollback", "--redis-url", redis_url, "--partitions", str(PARTITIONS), "--to", "legacy",
                       "--stop-with", "none", "--catch-up", "5")
        assert back.returncode == 0, back.stderr + back.stdout
        assert read_roles(redis_client).primary == "legacy"
        assert {read_roles(redis_client, p).epoch for p in all_partitions(PARTITIONS)} == {roles.epoch + 1}
        before = sum(production(redis_client).values())
        wait_for(lambda: sum(production(redis_client).values()) >= before + 300, 60, "legacy feeding production again",
                 workers)
    finally:
        stopping.set()
        flow.join(timeout=30)
        try:
            wait_for(lambda: len(production(redis_client)) >= len(inputs(redis_client)), 90,
                     "a production result for every signal", workers)
        finally:
            for worker in workers:  # also when an assertion above failed: no worker outlives its test
                stop(worker)
    published, produced = production(redis_client), inputs(redis_client)
    assert not [entry for entry, n in published.items() if n > 1], "a signal got two production results"
    assert not [entry for entry in produced if entry not in published], "a signal got no production result"
    summary = production_summary(redis_client, partitions=PARTITIONS)
    assert summary is not None
    assert (summary["production_duplicates"], summary["production_missing"]) == (0, 0)
    assert set(summary["by_worker"]) == {"legacy", "candidate"}
