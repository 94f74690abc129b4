"""The one place a Redis client (single server or Redis Cluster) is built from a URL, and the one way a URL
is shown (password hidden)."""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from harness.errors import ConfigurationError

CONNECT_TIMEOUT_S = 5.0  # a server that does not accept within this is down, not slow
# Longer than every blocking read the harness issues (XREAD BLOCK is at most a few seconds), so a
# timeout means a dead or stuck server. A caller that blocks longer passes its own.
SOCKET_TIMEOUT_S = 30.0
HEALTH_CHECK_INTERVAL_S = 30  # a connection idle this long is pinged before use (NAT/firewall drops)
RETRIES = 3  # a command that hits a connection error or a timeout is retried this often, with backoff
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.05, 1.0
# A cluster client retries a command this often on a connection error, a timeout, CLUSTERDOWN or an
# uncovered slot, reading the slot map again before each attempt: enough to find a promoted replica
# or a moved slot. redis-py 8 retries these at once, without the backoff, so they do not outlast a
# failover (cluster-node-timeout and an election): while one is under way a command fails like an
# unreachable Redis, and the harness's own store-error backoff waits for the new master.
CLUSTER_RETRIES = 5

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}  # -> the scheme of each node
URL_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)  # every scheme redis_client accepts

REDACTED = "***"
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*:)\S+@", re.I)  # scheme://user:PASSWORD@
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]+", re.I)  # unix:///path?password=PASSWORD


def redis_client(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for a redis://, rediss:// (TLS) or unix:// URL, or a Redis Cluster at
    redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS). A single-server client
    connects at its first command; a cluster client reads the slot map at once, and raises
    redis.ConnectionError when no seed answers.

    Options in the URL's query string (e.g. `?socket_timeout=60`) win over these defaults.
    `socket_timeout=None` waits forever: only for a reader that blocks with no deadline (pub/sub listen).
    """
    if is_cluster_url(url):
        return _cluster_client(url, socket_timeout)
    retry = Retry(_backoff(), RETRIES)
    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL_S, retry=retry, retry_on_timeout=True,
    )


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def _cluster_client(url: str, socket_timeout: float | None) -> redis.Redis:
    """A RedisCluster seeded by every host of the URL; the other nodes are discovered from the first that answers.

    Typed as redis.Redis, which it does not subclass, on purpose: every key the harness touches in
    one command, pipeline or script carries its partition's hash tag, so each call lands on one
    slot, where RedisCluster offers the same commands (registered scripts, MULTI/EXEC, WATCH) with
    the same replies (but for a transaction's raw b"OK"). A call spanning slots is refused before it
    is sent (redis.RedisClusterException), never run half.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    node_url = urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme],
                                         netloc=f"{userinfo}@{first}" if userinfo else first))
    seeds = [_cluster_node(host) for host in others]
    try:
        client = RedisCluster.from_url(
            node_url, startup_nodes=seeds, require_full_coverage=True,
            retry=Retry(_backoff(), CLUSTER_RETRIES), socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=socket_timeout, health_check_interval=HEALTH_CHECK_INTERVAL_S, retry_on_timeout=True,
        )
    except RedisClusterException as exc:
        # Raised when no seed answers or the slots are not all served. It is not a RedisError, so
        # callers would miss it: as a ConnectionError it is an unreachable store like any other.
        raise redis.ConnectionError(f"Redis Cluster unavailable: {redact(str(exc))}") from exc
    return cast(redis.Redis, client)


def _cluster_node(host: str) -> ClusterNode:
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        raise ConfigurationError(f"{host!r} in a redis+cluster:// URL is not HOST:PORT")
    return ClusterNode(name.strip("[]"), int(port))


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", url)
    userinfo = f"{parts.username or ''}:{REDACTED}@"
    netloc = userinfo + parts.netloc.rpartition("@")[2]
    return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", urlunsplit(parts._replace(netloc=netloc)))


def redact(text: str) -> str:
    """Any URL password inside a free text (an exception message, say) replaced by ***."""
    return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text))


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)
