"""Every command gets its Redis client from the one builder, with sane defaults; URLs are shown without passwords."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner

from harness.cli import options
from harness.cli.main import cli
from harness.errors import ConfigurationError, HarnessError
from harness.transport import connection
from harness.transport.connection import (
    CLUSTER_RETRIES,
    CONNECT_TIMEOUT_S,
    HEALTH_CHECK_INTERVAL_S,
    SOCKET_TIMEOUT_S,
    is_cluster_url,
    redact,
    redact_url,
    redis_client,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55"

# The arguments each command needs besides --redis-url before it builds its client.
COMMAND_ARGS: dict[str, list[str]] = {
    "comparator": [],
    "cutover": ["--dry-run"],
    "export": ["--pairs", "{tmp}/pairs.csv"],
    "gate": ["--policy", str(ROOT / "policies" / "default.toml")],
    "produce": ["--count", "1"],
    "record": ["--count", "1", "--out", "{tmp}/signals.jsonl"],
    "report": [],
    "retire": ["legacy"],
    "rollback": [],
    "status": [],
    "tap": ["--channel", "prod:out"],
    "trim": [],
    "watch": ["--once"],
    "watchdog": ["--once"],
    "serve": ["--port", "0"],
    "disagreements": [],
}


class ClientBuilt(HarnessError):
    pass


def test_no_command_module_builds_its_own_redis_client() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "harness" / "cli").glob("*.py"))
                 if re.search(r"\bfrom_url\b|redis\.Redis\(|StrictRedis\(", path.read_text())]
    assert offenders == []


def test_every_command_with_a_redis_url_is_covered_here() -> None:
    with_url = {name for name, command in cli.commands.items()
                if any(isinstance(p, click.Option) and "--redis-url" in p.opts for p in command.params)}
    assert with_url - {"worker", "demo"} == set(COMMAND_ARGS)  # worker and demo: see the grep test above


@pytest.mark.parametrize("command", sorted(COMMAND_ARGS))
def test_each_command_builds_its_client_through_the_shared_builder(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, float | None]] = []

    def fake_client(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
        built.append((url, socket_timeout))
        raise ClientBuilt(f"client for {url}")

    monkeypatch.setattr(options, "redis_client", fake_client)
    url = f"redis://:{SECRET}@127.0.0.1:1/0"
    args = [arg.format(tmp=tmp_path) for arg in COMMAND_ARGS[command]]
    result = CliRunner().invoke(cli, [command, "--redis-url", url, *args])
    assert [u for u, _ in built] == [url], result.output
    assert result.exit_code == 1 and "client for redis://:***@127.0.0.1:1/0" in result.output
    assert SECRET not in result.output


def test_a_url_that_is_not_redis_is_a_usage_error_without_its_password() -> None:
    result = CliRunner().invoke(cli, ["status", "--redis-url", f"http://:{SECRET}@example.invalid/"])
    assert result.exit_code == 2
    assert "is not a redis://, rediss://, unix:// or redis+cluster:// URL" in result.output
    assert SECRET not in result.output


def test_a_command_takes_a_cluster_url_and_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def fake_client(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
        built.append(url)
        raise ClientBuilt(f"client for {url}")

    monkeypatch.setattr(options, "redis_client", fake_client)
    url = f"rediss+cluster://:{SECRET}@10.0.0.1:7000,10.0.0.2:7000"
    result = CliRunner().invoke(cli, ["status", "--redis-url", url])
    assert built == [url]
    assert "client for rediss+cluster://:***@10.0.0.1:7000,10.0.0.2:7000" in result.output
    assert SECRET not in result.output


def test_the_client_has_timeouts_health_checks_and_retries() -> None:
    client = redis_client("redis://localhost:6379/0")
    settings = client.connection_pool.connection_kwargs
    assert settings["socket_connect_timeout"] == CONNECT_TIMEOUT_S
    assert settings["socket_timeout"] == SOCKET_TIMEOUT_S
    assert settings["health_check_interval"] == HEALTH_CHECK_INTERVAL_S
    assert settings["retry_on_timeout"] is True and settings["retry"].get_retries() >= 1


def test_a_blocking_reader_may_wait_forever_and_the_url_query_wins() -> None:
    assert redis_client("redis://localhost/0", socket_timeout=None).connection_pool.connection_kwargs[
        "socket_timeout"] is None
    from_query = redis_client("redis://localhost/0?socket_timeout=90").connection_pool.connection_kwargs
    assert from_query["socket_timeout"] == 90.0


@pytest.mark.parametrize(("url", "connection"), [
    ("rediss://:pw@redis.example:6380/0", redis.SSLConnection),
    ("redis://localhost:6379/0", redis.Connection),
    ("unix:///run/redis.sock?db=2", redis.UnixDomainSocketConnection),
])  # fmt: skip
def test_tls_and_unix_socket_urls_are_accepted_unchanged(url: str, connection: type) -> None:
    assert redis_client(url).connection_pool.connection_class is connection


@pytest.mark.parametrize(("url", "shown"), [
    (f"redis://:{SECRET}@redis:6379/0", "redis://:***@redis:6379/0"),
    (f"rediss://admin:{SECRET}@[::1]:6380/1", "rediss://admin:***@[::1]:6380/1"),
    (f"unix:///run/redis.sock?db=0&password={SECRET}", "unix:///run/redis.sock?db=0&password=***"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    (f"redis+cluster://:{SECRET}@10.0.0.1:7000", "redis+cluster://:***@10.0.0.1:7000"),
    (f"rediss+cluster://op:{SECRET}@a:7000,b:7001/0?ssl_ca_certs=/ca.pem",
     "rediss+cluster://op:***@a:7000,b:7001/0?ssl_ca_certs=/ca.pem"),
    (f"redis+cluster://[::1]:7000,[::1]:7001?password={SECRET}", "redis+cluster://[::1]:7000,[::1]:7001?password=***"),
])  # fmt: skip
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_hides_passwords_of_urls_inside_a_message() -> None:
    message = f"Error connecting to redis://user:{SECRET}@db:6379/0 (via unix://:{SECRET}@/tmp/r.sock)"
    assert redact(message) == "Error connecting to redis://user:***@db:6379/0 (via unix://:***@/tmp/r.sock)"
    clustered = f"no seed of redis+cluster://:{SECRET}@a:7000,b:7000 answered"
    assert redact(clustered) == "no seed of redis+cluster://:***@a:7000,b:7000 answered"


@pytest.mark.parametrize(("url", "cluster"), [
    ("redis+cluster://127.0.0.1:7000", True),
    ("rediss+cluster://a:7000,b:7000", True),
    ("redis://localhost:6379/0", False),
    ("unix:///run/redis.sock", False),
])  # fmt: skip
def test_is_cluster_url(url: str, cluster: bool) -> None:
    assert is_cluster_url(url) is cluster


class FakeCluster:
    """Records what redis_client hands RedisCluster.from_url; connects nowhere."""

    def __init__(self, url: str, **kwargs: object) -> None:
        self.url, self.kwargs = url, kwargs


def test_a_cluster_url_builds_a_cluster_client_seeded_by_every_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection.RedisCluster, "from_url", FakeCluster)
    client = redis_client(f"rediss+cluster://op:{SECRET}@a:7000,b:7001,[::1]:7002/0?ssl_ca_certs=/ca.pem")
    assert isinstance(client, FakeCluster)
    assert client.url == f"rediss://op:{SECRET}@a:7000/0?ssl_ca_certs=/ca.pem"  # the first seed, TLS, its query
    kwargs = client.kwargs
    assert [(node.host, node.port) for node in kwargs["startup_nodes"]] == [("b", 7001), ("::1", 7002)]
    assert kwargs["require_full_coverage"] is True and kwargs["retry"].get_retries() == CLUSTER_RETRIES
    assert kwargs["socket_connect_timeout"] == CONNECT_TIMEOUT_S and kwargs["socket_timeout"] == SOCKET_TIMEOUT_S
    assert kwargs["health_check_interval"] == HEALTH_CHECK_INTERVAL_S and kwargs["retry_on_timeout"] is True


def test_a_cluster_seed_that_is_not_host_and_port_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'b' in a redis\\+cluster:// URL is not HOST:PORT"):
        redis_client("redis+cluster://a:7000,b")


def test_an_unreachable_cluster_is_a_connection_error_without_the_password() -> None:
    with pytest.raises(redis.ConnectionError, match="Redis Cluster unavailable") as caught:
        redis_client(f"redis+cluster://:{SECRET}@127.0.0.1:1")
    assert SECRET not in str(caught.value)
