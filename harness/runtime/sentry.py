"""Optional Sentry exception capture, switched on by SENTRY_DSN."""

from __future__ import annotations

import logging
import os
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from harness.transport.connection import redact


def init_sentry(worker: str, model_version: str, dsn: str | None = None) -> bool:
    """Initialise sentry-sdk when a DSN is configured; returns whether it is on."""
    dsn = dsn or os.environ.get("SENTRY_DSN")
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=model_version,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "shadow"),
        traces_sample_rate=0.0,
        # Log lines become breadcrumbs, not events: each failure is captured once, by `capture`,
        # with the signal id as a tag.
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        # Stack locals and messages may hold the Redis URL: its password never leaves the process.
        before_send=lambda event, _hint: _redacted(event),
        before_breadcrumb=lambda crumb, _hint: _redacted(crumb),
    )
    sentry_sdk.set_tag("worker", worker)
    sentry_sdk.set_tag("model_version", model_version)
    return True


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def capture(exc: BaseException, signal_id: str | None, **tags: str) -> None:
    """Report one exception with the signal id as a tag (a no-op when Sentry is off)."""
    if not sentry_sdk.is_initialized():
        return
    with sentry_sdk.new_scope() as scope:
        if signal_id is not None:
            scope.set_tag("signal_id", signal_id)
        for key, value in tags.items():
            scope.set_tag(key, value)
        sentry_sdk.capture_exception(exc)
