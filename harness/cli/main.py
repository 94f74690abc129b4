"""Entry point: the `harness` click group; an expected failure reaches the user as one line."""

from __future__ import annotations

import sys
from typing import Any

import click
import redis

from harness.errors import HarnessError
from harness.transport.connection import redact

# Redis could not be reached (or the password is wrong): the operator fixes the URL or the network.
REDIS_UNREACHABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
# Redis answered but refuses the work: an ACL, a read-only replica, a full server.
REDIS_REFUSED: tuple[type[Exception], ...] = (
    redis.exceptions.NoPermissionError, redis.exceptions.AuthenticationWrongNumberOfArgsError,
    redis.ReadOnlyError, redis.exceptions.OutOfMemoryError,
)


class HarnessGroup(click.Group):
    """Turns the harness's own errors, an unreachable Redis and file errors into one line on stderr.

    Anything else is a bug and keeps its traceback. Exit 1 for an operational error, 2 for a usage
    or configuration error (click's own usage errors already exit 2).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            raise one_line_error(_text(exc), exc.exit_code) from None
        except REDIS_UNREACHABLE as exc:
            raise one_line_error(f"cannot reach Redis ({_text(exc)}); check --redis-url / HARNESS_REDIS_URL",
                                 1) from None
        except REDIS_REFUSED as exc:
            raise one_line_error(f"Redis refused: {_text(exc)}", 1) from None
        except OSError as exc:
            raise one_line_error(os_error_line(exc), 1) from None


class ConfigurationLine(click.ClickException):
    """A configuration error, printed like any error but with the usage exit code."""

    exit_code = 2


def one_line_error(message: str, exit_code: int) -> click.ClickException:
    """`Error: MESSAGE` on stderr, with any URL password hidden."""
    kind = ConfigurationLine if exit_code == ConfigurationLine.exit_code else click.ClickException
    return kind(redact(message))


def os_error_line(exc: OSError) -> str:
    """`PATH: reason`, e.g. `/srv/out/pairs.csv: Permission denied`."""
    if exc.filename is None or not exc.strerror:
        return _text(exc)
    target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return f"{target}: {exc.strerror}"


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="harness")
def cli() -> None:
    """Blue/green shadow deployment for online clustering workers.

    Exit codes: 0 success; 1 error (one line on stderr) or gate failed; 2 usage error
    or gate inconclusive.
    """


def _register() -> None:
    from harness.cli import (
        acl_cmd,
        compare_cmd,
        cutover_cmd,
        deadletter_cmd,
        demo_cmd,
        experiment_cmd,
        gate_cmd,
        notify_cmd,
        produce_cmd,
        serve_cmd,
        watch_cmd,
        worker_cmd,
    )

    for module in (worker_cmd, produce_cmd, compare_cmd, demo_cmd, gate_cmd, cutover_cmd, acl_cmd, deadletter_cmd,
                   notify_cmd, watch_cmd, serve_cmd, experiment_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    sys.exit(cli.main(standalone_mode=True))
