"""CLI options defined once, each with its HARNESS_* environment variable (shown in --help)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import redis

from harness.contracts import DEFAULT_MAX_SAMPLES
from harness.partitions import DEFAULT_PARTITIONS, MAX_PARTITIONS
from harness.transport.connection import SOCKET_TIMEOUT_S, URL_SCHEMES, redact_url, redis_client
from harness.transport.keys import DEFAULT_INPUT_CHANNEL, DEFAULT_INPUT_STREAM

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def option(*decls: str, envvar: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, envvar=envvar, show_envvar=True, show_default=True, **kwargs)


redis_url = option(
    "--redis-url", envvar="HARNESS_REDIS_URL", default=DEFAULT_REDIS_URL,
    help="Redis to use (redis://, rediss:// or unix:// URL, or a Redis Cluster: redis+cluster://HOST:PORT[,HOST:PORT], "
         "rediss+cluster:// for TLS); query options such as ?socket_timeout=60 override the client's defaults. "
         "Its password is never printed.",
)


@dataclass(frozen=True)
class RedisTarget:
    """The Redis a command was pointed at: builds its client, and shows its URL without the password."""

    url: str = field(repr=False)  # a traceback or a debugger shows reprs: never the password

    def client(self, *, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
        return redis_client(self.url, socket_timeout=socket_timeout)

    def __repr__(self) -> str:
        return f"RedisTarget({redact_url(self.url)!r})"

    def __str__(self) -> str:
        return redact_url(self.url)


def redis_connection(command: F) -> F:
    """Like rq's shared_options: adds --redis-url (HARNESS_REDIS_URL) and passes `redis: RedisTarget`."""

    @redis_url
    @functools.wraps(command)
    def wrapper(*args: Any, redis_url: str, **kwargs: Any) -> Any:
        if urlsplit(redis_url).scheme not in URL_SCHEMES:
            raise click.BadParameter(f"{redact_url(redis_url)} is not a redis://, rediss://, unix:// or "
                                     "redis+cluster:// URL",
                                     param_hint="'--redis-url' / HARNESS_REDIS_URL")
        return command(*args, redis=RedisTarget(redis_url), **kwargs)

    return wrapper  # type: ignore[return-value]


input_stream = option(
    "--input-stream", envvar="HARNESS_INPUT_STREAM", default=DEFAULT_INPUT_STREAM,
    help="Input stream that every worker reads through its own consumer group.",
)
partitions = option(
    "--partitions", envvar="HARNESS_PARTITIONS", default=DEFAULT_PARTITIONS, type=click.IntRange(1, MAX_PARTITIONS),
    help="How many partitions the input is split into, by device (docs/partitions.md). Every producer, worker "
         "and comparator of a deployment must agree; 1 keeps a single stream with the unpartitioned key names.",
)
input_channel = option(
    "--channel", envvar="HARNESS_INPUT_CHANNEL", default=DEFAULT_INPUT_CHANNEL,
    help="Pub/sub channel a worker reads with --transport pubsub (produce --publish-channel publishes to one).",
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
metrics_port = option(
    "--metrics-port", envvar="HARNESS_METRICS_PORT", default=0, type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port at /metrics (docs/metrics.md); 0 serves none.",
)
metrics_host = option(
    "--metrics-host", envvar="HARNESS_METRICS_HOST", default="127.0.0.1",
    help="Address the metrics port binds to: loopback, or 0.0.0.0 inside a container network.",
)
log_format = option(
    "--log-format", envvar="HARNESS_LOG_FORMAT", default="json", type=click.Choice(["json", "text"]),
    help="Structured JSON lines, or plain text for a terminal.",
)
experiment = option(
    "--experiment", "experiment", envvar="HARNESS_EXPERIMENT", default=None,
    help="The experiment to work on (`harness experiment list`); default: the current one, else the latest.",
)


def env_pairs(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, str]:
    """Callback of a repeatable KEY=VALUE option: a dict, or a usage error naming the bad pair."""
    from harness.envpairs import parse_env_pairs

    try:
        return parse_env_pairs(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def env_over_process(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, str]:
    """Callback of a KEY=VALUE option that sets an environment over this process's."""
    return {**os.environ, **env_pairs(ctx, param, pairs)}


class FilePath(click.Path):
    """A file option: its extension is checked (a usage error), and an output's folder before any work is done."""

    def __init__(self, suffixes: Callable[[], tuple[str, ...]] = tuple, *, output: bool = False,
                 exists: bool = False) -> None:
        super().__init__(exists=exists, dir_okay=False, path_type=Path)
        self.suffixes, self.output = suffixes, output

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        suffixes = self.suffixes()
        if suffixes and path.suffix.lower() not in suffixes:
            self.fail(f"{path}: use a file name ending in {', '.join(suffixes)}", param, ctx)
        if self.output and not path.parent.is_dir():
            raise click.FileError(str(path), hint=f"the folder {path.parent} does not exist")
        return path


def signal_file_suffixes() -> tuple[str, ...]:
    from harness.producer.files import FORMATS  # pyarrow: slow to import, so only once a file is given

    return FORMATS


def table_file_suffixes() -> tuple[str, ...]:
    return (".parquet", ".csv")


output_file = FilePath(output=True)
signal_output = FilePath(signal_file_suffixes, output=True)
signal_input = FilePath(signal_file_suffixes, exists=True)
table_output = FilePath(table_file_suffixes, output=True)
