"""What `retire` removes is derived from keys.py, and matches what the workers really write."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis

from harness.clustering import WorkerContext
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from workers.candidate import create as create_candidate
from workers.legacy import create as create_legacy

ROOT = Path(__file__).resolve().parents[2]


def matching(client: redis.Redis, worker: str) -> set[bytes]:
    owned = keys.worker_state_keys(worker)
    return {key for pattern in owned.patterns for key in client.scan_iter(match=pattern)}


@pytest.mark.parametrize("create", [create_legacy, create_candidate], ids=["legacy", "candidate"])
def test_every_state_key_a_worker_writes_is_one_retire_removes(redis_client: redis.Redis, create: object) -> None:
    algorithm = create(WorkerContext("blue", redis_client, {}))  # type: ignore[operator]
    algorithm.assign_batch(list(generate_signals(60, seed=3, devices=3, samples=64)))
    commit = getattr(algorithm, "commit", None)
    if commit is not None:
        commit()
    written = set(redis_client.keys("*"))
    assert written, "the worker keeps state in Redis"
    assert written == matching(redis_client, "blue")


def test_a_worker_owns_no_key_of_a_worker_whose_name_starts_like_its_own(redis_client: redis.Redis) -> None:
    for worker in ("legacy", "legacy-replica", "legacy2"):
        redis_client.set(keys.device_state_key(worker, "dev-1"), 1)
        redis_client.set(keys.seen_ids_key(worker, 493_000), 1)
    assert matching(redis_client, "legacy") == {keys.device_state_key("legacy", "dev-1").encode(),
                                                keys.seen_ids_key("legacy", 493_000).encode()}


@pytest.mark.parametrize("name", ["", "legacy:v2"])
def test_a_name_that_is_not_one_key_segment_owns_nothing(name: str) -> None:
    # Worker 'legacy' would otherwise own the keys of worker 'legacy:v2'.
    with pytest.raises(ValueError, match="without ':'"):
        keys.worker_state_keys(name)


def test_glob_characters_in_a_worker_name_match_only_themselves(redis_client: redis.Redis) -> None:
    redis_client.set(keys.device_state_key("b*", "dev-1"), 1)
    redis_client.set(keys.device_state_key("blue", "dev-1"), 1)
    redis_client.set(keys.seen_ids_key("[ab]", 493_000), 1)
    redis_client.set(keys.seen_ids_key("a", 493_000), 1)
    assert matching(redis_client, "b*") == {keys.device_state_key("b*", "dev-1").encode()}
    assert matching(redis_client, "[ab]") == {keys.seen_ids_key("[ab]", 493_000).encode()}


def test_a_worker_keeps_its_results_and_dead_letters_past_retirement() -> None:
    owned = keys.worker_state_keys("legacy")
    assert keys.results_stream("legacy") not in owned.exact
    assert keys.dead_letter_stream("legacy") not in owned.exact
    assert not any(keys.results_stream("legacy").startswith(p.rstrip("*")) for p in owned.patterns)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("harness/comparator", "harness.cutover"),
    ("harness/cutover", "harness.runtime"),
    ("harness/cutover", "harness.comparator"),
    ("harness/transport", "harness.cutover"),
    ("harness/transport", "harness.runtime"),
])
def test_dependencies_point_one_way(package: str, forbidden: str) -> None:
    offenders = {f"{path.relative_to(ROOT)}: {module}" for path in sorted((ROOT / package).glob("*.py"))
                 for module in imports_of(path) if module == forbidden or module.startswith(forbidden + ".")}
    assert not offenders, f"{package} must not import {forbidden}"
