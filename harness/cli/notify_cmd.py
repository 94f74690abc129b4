"""`harness watchdog`, and `notifies`: the decorator that reports a cutover, rollback or retire to the webhook."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis as redis_errors

from harness.cli import options
from harness.errors import HarnessError
from harness.transport.connection import redact

F = TypeVar("F", bound=Callable[..., Any])
DETAILS = ("target", "retiring", "worker", "actor", "reason", "force")  # the command's arguments worth telling


def notifies(action: str) -> Callable[[F], F]:
    """After the command: completed, refused (a harness error) or failed, to the webhook if one is set.

    A --dry-run or a usage error is not reported. The notification never changes the exit code.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return command(*args, **kwargs)
            details = {key: kwargs[key] for key in DETAILS if key in kwargs}
            try:
                outcome = command(*args, **kwargs)
            except (click.exceptions.Exit, click.UsageError):
                raise
            except Exception as exc:
                _tell(action, "refused" if isinstance(exc, HarnessError) else "failed",
                      {**details, "error": " ".join(str(exc).split()) or type(exc).__name__}, kwargs)
                raise
            _tell(action, "completed", details, kwargs)
            return outcome

        return wrapper  # type: ignore[return-value]

    return decorate


def _tell(action: str, outcome: str, details: dict[str, Any], kwargs: dict[str, Any]) -> None:
    from harness.notify import action_event, notify

    redis = kwargs.get("redis")
    if outcome == "completed" and isinstance(redis, options.RedisTarget):
        details = {**details, **_roles(redis)}
    notify(action_event(action, outcome, details), policy=kwargs.get("policy"))


def _roles(redis: options.RedisTarget) -> dict[str, Any]:
    """The roles after the command, best effort: a notification must not fail on them."""
    from harness.transport.roles import read_roles

    try:
        roles = read_roles(redis.client())
    except Exception:  # Redis gone since the command: the notification goes without them
        return {}
    return {"primary": roles.primary, "epoch": roles.epoch}


@click.command("watchdog")
@options.redis_connection
@options.option("--worker", "workers", envvar="HARNESS_WATCHDOG_WORKER", multiple=True,
                help="A worker to watch (repeatable); default: every worker with a heartbeat.")
@options.option("--silent-after", envvar="HARNESS_WATCHDOG_SILENT_AFTER", default=30.0, type=click.FloatRange(0.1),
                help="Seconds without a heartbeat after which a running worker is silent (they beat every second).")
@options.option("--interval", envvar="HARNESS_WATCHDOG_INTERVAL", default=5.0, type=click.FloatRange(0.1),
                help="Seconds between two checks.")
@options.option("--once", envvar="HARNESS_WATCHDOG_ONCE", is_flag=True, default=False,
                help="Check once (for cron): notify every silent worker, exit 1 if any is silent.")
def watchdog_command(redis: options.RedisTarget, workers: tuple[str, ...], silent_after: float, interval: float,
                     once: bool) -> None:
    """Watch worker heartbeats; notify the webhook (HARNESS_WEBHOOK_URL) when one goes silent and when it is back.

    A worker that stopped in order (SIGTERM, drained by a cutover) is not silent. Runs until Ctrl-C.
    """
    from harness.notify import notify
    from harness.watchdog import Watchdog, heartbeats

    client = redis.client()
    dog = Watchdog(silent_after)
    try:
        while True:
            try:
                beats = heartbeats(client, workers)
            except redis_errors.RedisError as exc:  # a watchdog outlives a Redis blip; --once reports it
                if once:
                    raise
                why = redact(" ".join(str(exc).split()))
                click.echo(f"watchdog: cannot read heartbeats ({why}); retrying", err=True)
                time.sleep(interval)
                continue
            for event in dog.check(beats):
                click.echo(event.text)
                notify(event)
            if once:
                click.echo(f"{len(beats) - len(dog.silent)} of {len(beats)} workers alive")
                click.get_current_context().exit(1 if dog.silent else 0)
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("watchdog stopped")


COMMANDS = [watchdog_command]
