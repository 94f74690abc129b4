"""Entry point: the `harness` click group; every failure reaches the user as one line."""

from __future__ import annotations

import sys
from typing import Any

import click
import redis

from harness.contracts import ContractError
from harness.embedded_redis import RedisServerError
from harness.runtime.loader import WorkerSpecError

# Expected failures become one line and exit code 1; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    WorkerSpecError, ContractError, RedisServerError, FileNotFoundError, redis.RedisError,
)


class HarnessGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(_one_line(exc)) from None
        except ValueError as exc:  # configuration errors name the variable or option
            raise click.ClickException(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    if isinstance(exc, redis.ConnectionError):
        return f"cannot reach Redis ({exc}); check --redis-url / HARNESS_REDIS_URL"
    return " ".join(str(exc).split()) or type(exc).__name__


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="harness")
def cli() -> None:
    """Blue/green shadow deployment for online clustering workers.

    Exit codes: 0 success; 1 error (one line on stderr) or gate failed; 2 usage error
    or gate inconclusive.
    """


def _register() -> None:
    from harness.cli import compare_cmd, cutover_cmd, demo_cmd, gate_cmd, produce_cmd, worker_cmd

    for module in (worker_cmd, produce_cmd, compare_cmd, demo_cmd, gate_cmd, cutover_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    sys.exit(cli.main(standalone_mode=True))
