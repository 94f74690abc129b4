"""CLI options defined once, each with its HARNESS_* environment variable (shown in --help)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from harness.contracts import DEFAULT_MAX_SAMPLES
from harness.transport.keys import DEFAULT_INPUT_CHANNEL, DEFAULT_INPUT_STREAM

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def option(*decls: str, envvar: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, envvar=envvar, show_envvar=True, show_default=True, **kwargs)


redis_url = option(
    "--redis-url", envvar="HARNESS_REDIS_URL", default=DEFAULT_REDIS_URL,
    help="Redis to use (redis://, rediss:// or unix:// URL).",
)
input_stream = option(
    "--input-stream", envvar="HARNESS_INPUT_STREAM", default=DEFAULT_INPUT_STREAM,
    help="Input stream that every worker reads through its own consumer group.",
)
input_channel = option(
    "--channel", envvar="HARNESS_INPUT_CHANNEL", default=DEFAULT_INPUT_CHANNEL,
    help="Pub/sub channel (with --transport pubsub, or produce --channel-mode).",
)
max_samples = option(
    "--max-samples", envvar="HARNESS_MAX_SAMPLES", default=DEFAULT_MAX_SAMPLES, type=click.IntRange(1),
    help="Largest accepted signal; a larger one is rejected to the dead-letter stream.",
)
log_level = option(
    "--log-level", envvar="HARNESS_LOG_LEVEL", default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="debug logs one line per signal (id and prediction); info one line per batch.",
)
log_format = option(
    "--log-format", envvar="HARNESS_LOG_FORMAT", default="json", type=click.Choice(["json", "text"]),
    help="Structured JSON lines, or plain text for a terminal.",
)
