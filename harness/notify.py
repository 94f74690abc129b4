"""Webhook notifications (Slack-compatible or generic JSON) of gate verdicts, cutovers and silent workers.

Best effort: bounded retries inside one overall timeout; a failure is one log line naming only the
webhook's scheme and host (its path often holds a token), and never raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception_type

log = logging.getLogger("harness.notify")

URL_ENV = "HARNESS_WEBHOOK_URL"
FORMAT_ENV = "HARNESS_WEBHOOK_FORMAT"
TIMEOUT_ENV = "HARNESS_WEBHOOK_TIMEOUT"
ATTEMPTS_ENV = "HARNESS_WEBHOOK_ATTEMPTS"
FORMATS = ("slack", "json")
DEFAULT_TIMEOUT_S = 5.0  # the most a notification may delay the command, every attempt included
DEFAULT_ATTEMPTS = 3
POLICY_KEYS = ("url_env", "format", "timeout_s", "attempts")  # [notify] in a policy: never the URL itself


@dataclass(frozen=True)
class Event:
    name: str  # gate.verdict, cutover, rollback, retire, worker.silent, worker.back
    text: str  # one line for a human (Slack's "text")
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookConfig:
    url: str = field(repr=False)  # may embed a token: only `where` is ever shown
    format: str = "slack"
    timeout_s: float = DEFAULT_TIMEOUT_S
    attempts: int = DEFAULT_ATTEMPTS

    @property
    def where(self) -> str:
        return redacted(self.url)

    def __repr__(self) -> str:
        return f"WebhookConfig({self.where!r}, {self.format!r}, {self.timeout_s}, {self.attempts})"


class NotifyConfigError(ValueError):
    """A webhook setting that cannot work; logged, never raised to a command."""


class _Retryable(Exception):
    """A failure worth another attempt: a 5xx or 429 answer, a refused connection, a timeout."""


Send = Callable[[WebhookConfig, bytes, float], None]  # config, body, seconds left: raises on failure


def redacted(url: str) -> str:
    """scheme://host[:port] only: a webhook's path, query and user info often carry its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme or '?'}://{host}" + (f":{parts.port}" if parts.port else "")


def body(event: Event, kind: str) -> bytes:
    """Slack's {"text": ...}, or the generic {"event": ..., "data": {...}} (the line in data.summary)."""
    if kind == "slack":
        document: dict[str, Any] = {"text": event.text}
    else:
        document = {"event": event.name, "data": {**event.data, "summary": event.text}}
    return json.dumps(document, default=str, allow_nan=False).encode()


def load_config(env: Mapping[str, str] | None = None, policy: str | Path | None = None) -> WebhookConfig | None:
    """The webhook from HARNESS_WEBHOOK_* (first) or the policy's [notify] table; None when none is set."""
    env = os.environ if env is None else env
    table = _policy_table(policy)
    url_env = str(table.get("url_env", URL_ENV))
    url = env.get(URL_ENV) or env.get(url_env) or ""
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise NotifyConfigError(f"the webhook URL ({redacted(url)}) is not an http:// or https:// URL")
    kind = env.get(FORMAT_ENV) or str(table.get("format", "slack"))
    if kind not in FORMATS:
        raise NotifyConfigError(f"webhook format {kind!r}: choose slack or json ({FORMAT_ENV})")
    timeout_s = _number(env.get(TIMEOUT_ENV) or table.get("timeout_s", DEFAULT_TIMEOUT_S), TIMEOUT_ENV)
    attempts = int(_number(env.get(ATTEMPTS_ENV) or table.get("attempts", DEFAULT_ATTEMPTS), ATTEMPTS_ENV))
    return WebhookConfig(url, kind, timeout_s, max(attempts, 1))


def notify(event: Event, *, policy: str | Path | None = None, env: Mapping[str, str] | None = None,
           send: Send | None = None) -> bool:
    """Send `event` if a webhook is configured; whether it was delivered. Never raises, never waits past the timeout."""
    try:
        config = load_config(env, policy)
    except (NotifyConfigError, OSError, ValueError) as exc:
        log.warning("notification %s not sent: %s", event.name, exc)
        return False
    if config is None:
        return False
    try:
        deliver(config, body(event, config.format), send or post)
    except Exception as exc:  # a notification never fails the command it reports on
        log.warning("notification %s to %s failed: %s", event.name, config.where, _reason(exc, config))
        return False
    return True


def deliver(config: WebhookConfig, payload: bytes, send: Send) -> None:
    """Up to `attempts` tries with a short backoff, all within `timeout_s`; raises the last failure."""
    deadline = time.monotonic() + config.timeout_s

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= config.attempts or time.monotonic() + _backoff_s(state) >= deadline

    retrying = Retrying(retry=retry_if_exception_type(_Retryable), wait=_backoff_s, stop=stop, reraise=True)
    for attempt in retrying:
        with attempt:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no time left of {config.timeout_s:g}s")
            send(config, payload, left)


def _backoff_s(state: RetryCallState) -> float:
    return min(0.1 * 2.0 ** (int(state.attempt_number) - 1), 2.0)


def post(config: WebhookConfig, payload: bytes, timeout_s: float) -> None:
    """One HTTP POST of the JSON body; 5xx, 429, refused connections and timeouts are worth a retry."""
    request = urllib.request.Request(config.url, data=payload, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "harness"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # http(s) only: checked by load_config
            reply.read(1024)
    except urllib.error.HTTPError as exc:
        failure = f"HTTP {exc.code}"
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(failure) from None
        raise RuntimeError(failure + " (check the webhook URL and its token)") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _Retryable(_reason(exc, config)) from None


def _reason(exc: BaseException, config: WebhookConfig) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = "timed out" if isinstance(exc, TimeoutError) and not str(exc) else str(exc) or type(exc).__name__
    return " ".join(text.replace(config.url, config.where).split())  # never the URL, one line


def _number(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NotifyConfigError(f"{name}={value!r} is not a number") from None
    if not number > 0:
        raise NotifyConfigError(f"{name}={value!r} must be > 0")
    return number


def _policy_table(policy: str | Path | None) -> Mapping[str, Any]:
    if policy is None:
        return {}
    from harness.tomlfile import read_toml

    table = read_toml(Path(policy), "policy", NotifyConfigError).get("notify", {})
    if not isinstance(table, dict):
        raise NotifyConfigError(f"policy {policy}: [notify] must be a table")
    unknown = sorted(set(table) - set(POLICY_KEYS))
    if unknown:
        raise NotifyConfigError(f"policy {policy}: unknown key {unknown[0]!r} in [notify]; known: "
                                f"{', '.join(POLICY_KEYS)} (the URL itself goes in an environment variable)")
    return table


# --- the events -------------------------------------------------------------------------------------


def gate_event(document: Mapping[str, Any]) -> Event:
    """From the gate's harness.gate/1 JSON: its summary line, and the whole document as data."""
    policy = f" (policy {document['policy']})" if document.get("policy") else ""
    return Event("gate.verdict", f"harness {document['summary']}{policy}", dict(document))


def notify_gate(document: Mapping[str, Any], policy: str | Path | None = None) -> bool:
    return notify(gate_event(document), policy=policy)


def action_event(action: str, outcome: str, details: Mapping[str, Any]) -> Event:
    """cutover / rollback / retire: completed, refused (a harness error) or failed, with what was asked."""
    shown = ", ".join(f"{k} {v}" for k, v in details.items()
                      if v is not None and v is not False and v != "" and k != "error")
    error = f": {details['error']}" if details.get("error") else ""
    return Event(action, f"harness {action} {outcome}{error}" + (f" ({shown})" if shown else ""),
                 {"outcome": outcome, **details})
