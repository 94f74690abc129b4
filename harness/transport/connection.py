"""The one place a Redis client is built from a URL, and the one way a URL is shown (password hidden)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_S = 5.0  # a server that does not accept within this is down, not slow
# Longer than every blocking read the harness issues (XREAD BLOCK is at most a few seconds), so a
# timeout means a dead or stuck server. A caller that blocks longer passes its own.
SOCKET_TIMEOUT_S = 30.0
HEALTH_CHECK_INTERVAL_S = 30  # a connection idle this long is pinged before use (NAT/firewall drops)
RETRIES = 3  # a command that hits a connection error or a timeout is retried this often, with backoff
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.05, 1.0

REDACTED = "***"
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*:)\S+@", re.I)  # scheme://user:PASSWORD@
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]+", re.I)  # unix:///path?password=PASSWORD


def redis_client(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for a redis://, rediss:// (TLS) or unix:// URL; nothing connects until the first command.

    Options in the URL's query string (e.g. `?socket_timeout=60`) win over these defaults.
    `socket_timeout=None` waits forever: only for a reader that blocks with no deadline (pub/sub listen).
    """
    retry = Retry(ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S), RETRIES)
    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL_S, retry=retry, retry_on_timeout=True,
    )


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
