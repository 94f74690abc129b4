"""Least-privilege ACL users on a real redis-server 7: the shadow cannot promote itself or forge production."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.cutover.roles import switch_primary
from harness.embedded_redis import EmbeddedRedis
from harness.partitions import all_partitions
from harness.transport import keys
from harness.transport.roles import read_roles
from tests.support.processes import ROOT, start_harness, start_worker, stop

SIGNALS = 150
USERS = "legacy=harness-legacy,candidate=harness-candidate"


@pytest.fixture()
def acl_server() -> Iterator[EmbeddedRedis]:
    """A server of its own: ACL users outlive the shared server's FLUSHALL."""
    with EmbeddedRedis() as server:
        admin = redis.Redis.from_url(server.url)
        if int(admin.info("server")["redis_version"].split(".")[0]) < 7:
            pytest.skip("key selectors (%R~) need redis-server 7: apt-get install redis-server")
        admin.close()
        yield server


def create_user(server: EmbeddedRedis, *args: str) -> str:
    """Runs `harness acl ARGS`, applies its ACL SETUSER line as the admin, returns the user's URL."""
    password = secrets.token_hex(16)
    result = CliRunner().invoke(cli, ["acl", *args], env={"HARNESS_ACL_PASSWORD": password})
    assert result.exit_code == 0, result.output
    assert password not in result.output
    tokens = result.output.split()
    assert tokens[:2] == ["ACL", "SETUSER"]
    with redis.Redis.from_url(server.url) as admin:
        admin.execute_command(*tokens)
    return f"unix://{tokens[2]}:{password}@{server.socket}"


def create_users(server: EmbeddedRedis) -> dict[str, str]:
    """Every role's user, legacy the first primary; their URLs by role (workers by name)."""
    return {
        "operator": create_user(server, "--role", "operator"),
        "producer": create_user(server, "--role", "producer"),
        "comparator": create_user(server, "--role", "comparator"),
        "legacy": create_user(server, "--role", "worker", "--name", "legacy", "--primary"),
        "candidate": create_user(server, "--role", "worker", "--name", "candidate"),
    }


def run_to_idle(*processes: subprocess.Popen[bytes]) -> None:
    try:
        for process in processes:
            # args[:4]: the command without its --redis-url, which carries the user's password
            assert process.wait(timeout=120) == 0, f"{process.args[:4]!r} failed"
    finally:
        for process in processes:  # a failure must not leave a worker retrying against a server that is gone
            stop(process)


def produce_and_process(urls: dict[str, str], seed: int, tmp_path: Path, *legacy_args: str) -> None:
    produce = start_harness(["produce", "--redis-url", urls["producer"], "--count", str(SIGNALS),
                             "--samples", "200", "--seed", str(seed)], log=tmp_path / "producer.log")
    run_to_idle(produce)
    idle = ("--exit-when-idle", "1.5")
    run_to_idle(start_worker("legacy", urls["legacy"], *idle, *legacy_args, log=tmp_path / "legacy.log"),
                start_worker("candidate", urls["candidate"], *idle, log=tmp_path / "candidate.log"))


def production_by_worker(client: redis.Redis) -> Counter[str]:
    return Counter(fields[b"worker"].decode() for _, fields in client.xrange(keys.PRODUCTION_STREAM))


def denied(client: redis.Redis, *command: str) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def assert_acl_log_empty(server: EmbeddedRedis) -> None:
    with redis.Redis.from_url(server.url) as admin:
        # redis-py's CLIENT SETINFO (Redis >= 7.2) is optional: refused, it is ignored by the client.
        refused = [entry for entry in admin.execute_command("ACL", "LOG")
                   if entry[b"object"] != b"client|setinfo"]
    assert refused == [], f"a role was refused something it needs: {refused}"


def test_shadow_cannot_write_roles_or_production_and_the_grant_moves_with_the_cutover(
    acl_server: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = create_users(acl_server)
    clients = {role: redis.Redis.from_url(url) for role, url in urls.items()}
    production = keys.PRODUCTION_STREAM

    produce_and_process(urls, 1, tmp_path, "--init-primary")
    assert production_by_worker(clients["operator"]) == {"legacy": SIGNALS}
    assert clients["operator"].xlen(keys.results_stream("candidate")) == SIGNALS  # the shadow's commits work
    assert_acl_log_empty(acl_server)

    shadow = clients["candidate"]
    assert denied(shadow, "HSET", keys.ROLES_KEY, "primary", "candidate")
    assert denied(shadow, "XADD", production, "*", "data", "forged")
    assert denied(shadow, "PUBLISH", keys.PRODUCTION_CHANNEL, "forged")
    assert denied(shadow, "XADD", keys.DEFAULT_INPUT_STREAM, "*", "data", "forged")  # reads its input, never writes it
    assert denied(shadow, "SET", keys.control_key("legacy"), "drain")
    assert denied(clients["comparator"], "XADD", keys.results_stream("legacy"), "*", "data", "forged")
    assert denied(clients["producer"], "HSET", keys.ROLES_KEY, "primary", "candidate")
    assert read_roles(clients["operator"]).primary == "legacy"
    with redis.Redis.from_url(acl_server.url) as admin:
        admin.execute_command("ACL", "LOG", "RESET")

    monkeypatch.setenv("HARNESS_ACL_USERS", USERS)
    assert switch_primary(clients["operator"], "candidate").primary == "candidate"
    produce_and_process(urls, 2, tmp_path)
    assert production_by_worker(clients["operator"]) == {"legacy": SIGNALS, "candidate": SIGNALS}
    assert_acl_log_empty(acl_server)

    run_to_idle(start_harness(["comparator", "--redis-url", urls["comparator"], "--exit-when-idle", "1.5"],
                              log=tmp_path / "comparator.log"))
    report = subprocess.run([sys.executable, "-m", "harness", "report", "--redis-url", urls["comparator"],
                             "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["counts"]["matched"] == 2 * SIGNALS
    assert document["cutover"]["by_worker"] == {"legacy": SIGNALS, "candidate": SIGNALS}
    assert_acl_log_empty(acl_server)
    assert denied(clients["legacy"], "XADD", production, "*", "data", "forged")  # the old primary
    assert denied(clients["legacy"], "HSET", keys.ROLES_KEY, "primary", "legacy")
    for client in clients.values():
        client.close()


def test_acl_prints_only_the_hash_of_the_password_and_refuses_without_one() -> None:
    runner = CliRunner()
    with_password = runner.invoke(cli, ["acl", "--role", "worker", "--name", "candidate", "--format", "aclfile"],
                                  env={"HARNESS_ACL_PASSWORD": "hunter2-secret"})
    assert with_password.exit_code == 0
    assert with_password.output.startswith("user harness-candidate on #")
    assert "hunter2" not in with_password.output
    assert "~harness:production" not in with_password.output  # a shadow: no production grant
    without = runner.invoke(cli, ["acl", "--role", "producer"], env={"HARNESS_ACL_PASSWORD": ""})
    assert without.exit_code == 2
    assert "HARNESS_ACL_PASSWORD" in without.output


def test_the_same_users_serve_a_partitioned_input(
    acl_server: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_PARTITIONS", "2")  # every process below reads it, as a deployment's env would
    urls = create_users(acl_server)
    clients = {role: redis.Redis.from_url(url) for role, url in urls.items()}
    produce_and_process(urls, 3, tmp_path, "--init-primary")
    run_to_idle(start_harness(["comparator", "--redis-url", urls["comparator"], "--exit-when-idle", "1.5"],
                              log=tmp_path / "comparator.log"))
    assert_acl_log_empty(acl_server)
    partitioned_production = [keys.scoped(keys.PRODUCTION_STREAM, partition) for partition in all_partitions(2)]
    assert sum(clients["operator"].xlen(stream) for stream in partitioned_production) == SIGNALS
    for stream in partitioned_production:
        assert denied(clients["candidate"], "XADD", stream, "*", "data", "forged"), "the shadow, in any partition"
        assert denied(clients["candidate"], "HSET", keys.scoped(keys.ROLES_KEY, all_partitions(2)[0]), "primary", "x")
    report = subprocess.run([sys.executable, "-m", "harness", "report", "--redis-url", urls["comparator"],
                             "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["counts"]["matched"] == SIGNALS
    for client in clients.values():
        client.close()
