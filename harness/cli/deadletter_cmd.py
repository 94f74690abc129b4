"""`harness deadletter list|show|replay|purge`: options and printing only (logic in harness.deadletters)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from harness.cli import options

if TYPE_CHECKING:
    import redis

    from harness.deadletters import DeadLetterFilter, ReplayOutcome, StoredDeadLetter

F = TypeVar("F", bound=Callable[..., Any])
PIPED_WIDTH = 200  # into a file or grep, whole rows rather than a terminal's 80 columns

worker = options.option("--worker", envvar="HARNESS_DEADLETTER_WORKER", required=True,
                        help="The worker whose dead letters (harness:deadletter:WORKER) to act on.")
reasons = options.option("--reason", "reasons", envvar="HARNESS_DEADLETTER_REASON", multiple=True,
                         help="Only dead letters with this reason, e.g. oversize (repeatable; docs/contracts.md).")
since = options.option("--since", envvar="HARNESS_DEADLETTER_SINCE", default=None,
                       help="Only dead letters rejected at or after this time: ISO (UTC unless it has an offset) "
                            "or an age such as 30m, 1h, 2d.")
until = options.option("--until", envvar="HARNESS_DEADLETTER_UNTIL", default=None,
                       help="Only dead letters rejected at or before this time (ISO, or an age such as 1h).")
as_json = options.option("--json", "as_json", envvar="HARNESS_DEADLETTER_JSON", is_flag=True, default=False,
                         help="Machine-readable output.")


def selection(command: F) -> F:
    """The filters every subcommand takes; the command receives `client` and `selected` instead."""
    import functools

    @options.redis_connection
    @worker
    @reasons
    @since
    @until
    @functools.wraps(command)
    def wrapper(*args: Any, redis: options.RedisTarget, reasons: tuple[str, ...], since: str | None,
                until: str | None, **kwargs: Any) -> Any:
        from harness.deadletters import make_filter

        client = redis.client()
        return command(*args, client=client, selected=make_filter(client, reasons, since, until), **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group("deadletter")
def deadletter_group() -> None:
    """Read, replay and purge a worker's dead letters (rejected input, with its reason and payload)."""


@deadletter_group.command("list")
@selection
@options.option("--limit", envvar="HARNESS_DEADLETTER_LIMIT", default=None, type=click.IntRange(1),
                help="Show at most this many (oldest first).")
@as_json
def list_command(client: redis.Redis, selected: DeadLetterFilter, worker: str, limit: int | None,
                 as_json: bool) -> None:
    """The dead letters, oldest first: entry, time, reason, signal id, size and detail."""
    from harness.deadletters import dropped_count, iso_time, list_dead_letters

    letters = list_dead_letters(client, worker, selected, limit)
    dropped = dropped_count(client, worker)
    if as_json:
        click.echo(json.dumps({"worker": worker, "dropped": dropped,
                               "dead_letters": [letter.summary() for letter in letters]}, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"dead letters of {worker}")
    for column in ("entry", "time (UTC)", "reason", "signal id", "size"):
        table.add_column(column, no_wrap=True)  # whole ids, so the output can be grepped and pasted
    table.add_column("detail", overflow="fold")
    for letter in letters:
        size = f"{letter.size:,}" + (" (capped)" if letter.capped else "")
        cells = (letter.entry, iso_time(letter.at_ms)[:19].replace("T", " "), letter.reason, letter.signal_id or "-",
                 size, letter.detail)
        table.add_row(*map(escape, cells))  # input text is never rich markup
    console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
    console.print(table)
    console.print(f"{len(letters):,} shown" + (f"; {dropped:,} older ones were trimmed off the bounded stream "
                                                "and are gone" if dropped else ""), highlight=False)


@deadletter_group.command("show")
@click.argument("letter_id", metavar="ID")
@options.redis_connection
@worker
@as_json
def show_command(letter_id: str, redis: options.RedisTarget, worker: str, as_json: bool) -> None:
    """One dead letter in full (ID: its id, or its input entry), the payload decoded when JSON or msgpack."""
    from harness.deadletters import decode_payload, find_dead_letter, payload_base64

    letter = find_dead_letter(redis.client(), worker, letter_id)
    decoded = decode_payload(letter)
    if as_json:
        click.echo(json.dumps({**letter.summary(), "payload_format": decoded.format, "payload": decoded.value,
                               "payload_base64": payload_base64(letter)}, indent=2, default=str))
        return
    for name, value in letter.summary().items():
        if name not in ("stored", "capped"):
            click.echo(f"{name + ':':<11}{value if value is not None else '-'}")
    if letter.capped:
        click.echo(f"payload:   truncated: the first {len(letter.payload):,} of {letter.size:,} bytes are kept "
                   f"(the whole message has sha256 {letter.sha256}); not replayable from here")
    click.echo(f"payload ({decoded.format}):")
    click.echo(json.dumps(decoded.value, indent=2, default=str) if not isinstance(decoded.value, str)
               else decoded.value)


@deadletter_group.command("replay")
@selection
@options.input_stream
@options.option("--dry-run", envvar="HARNESS_DEADLETTER_DRY_RUN", is_flag=True, default=False,
                help="Show what would be replayed; change nothing.")
@as_json
def replay_command(client: redis.Redis, selected: DeadLetterFilter, worker: str, input_stream: str,
                   dry_run: bool, as_json: bool) -> None:
    """Put dead letters back onto the input (after a fix), each removed from the dead letters atomically.

    Every worker reading the input gets a replayed entry. A dead letter whose payload was capped
    cannot be rebuilt: it is skipped and counted as not replayable.
    """
    from harness.deadletters import replay

    outcome = replay(client, worker, selected, input_stream, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(_replay_json(outcome), indent=2))
        return
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(outcome.replayed):,} dead letters of {worker} onto {input_stream}")
    for letter in outcome.chosen:
        if letter.id in outcome.replayed:
            new_id = outcome.replayed[letter.id]
            click.echo(f"  entry {letter.entry} ({letter.reason}, signal {letter.signal_id or '-'})"
                       + (f" -> {new_id}" if new_id else ""))
    if outcome.gone:
        click.echo(f"{outcome.gone:,} were replayed or purged by someone else meanwhile")
    _echo_not_replayable(outcome.not_replayable)


def _replay_json(outcome: ReplayOutcome) -> dict[str, Any]:
    return {"dry_run": outcome.dry_run, "replayed": len(outcome.replayed), "entries": outcome.replayed,
            "gone": outcome.gone, "not_replayable": [letter.summary() for letter in outcome.not_replayable]}


def _echo_not_replayable(letters: list[StoredDeadLetter]) -> None:
    if not letters:
        return
    click.echo(f"{len(letters):,} not replayable: their payload was capped at the dead letter's prefix; replay "
               "them from a recording (`harness record` output, `harness produce --from FILE`), matching the "
               "sha256 below:")
    for letter in letters:
        click.echo(f"  entry {letter.entry} signal {letter.signal_id or '-'} "
                   f"{letter.size:,} bytes sha256 {letter.sha256}")


@deadletter_group.command("purge")
@selection
@options.option("--yes", envvar="HARNESS_DEADLETTER_YES", is_flag=True, default=False,
                help="Really delete: required, the dead letters are gone after.")
def purge_command(client: redis.Redis, selected: DeadLetterFilter, worker: str, yes: bool) -> None:
    """Delete the selected dead letters (all of the worker's without filters). Needs --yes."""
    from harness.deadletters import purge

    if not yes:
        raise click.UsageError("purge deletes dead letters for good: add --yes (with --reason/--since/--until to "
                               "choose which)")
    click.echo(f"purged {purge(client, worker, selected):,} dead letters of {worker}")


COMMANDS = [deadletter_group]
