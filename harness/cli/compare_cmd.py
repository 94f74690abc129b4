"""`harness comparator`, `harness report`, `harness export` and `harness tap`: options and wiring only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from harness.cli import options
from harness.comparator.service import (
    DEFAULT_GROUP,
    DEFAULT_MAX_SKEW,
    DEFAULT_STALL_AFTER_S,
    ComparatorObserver,
    ComparatorService,
    ComparatorSettings,
    Feed,
    default_feeds,
)
from harness.comparator.tap import TapMapping
from harness.errors import HarnessError
from harness.runtime.logs import configure_logging
from harness.transport import keys

Command = TypeVar("Command", bound=Callable[..., Any])

legacy_worker = options.option(
    "--legacy", "legacy_name", envvar="HARNESS_LEGACY_WORKER", default="legacy",
    help="Name of the legacy worker (its results stream is harness:results:NAME).",
)
candidate_worker = options.option(
    "--candidate", "candidate_name", envvar="HARNESS_CANDIDATE_WORKER", default="candidate",
    help="Name of the candidate worker.",
)
replica_worker = options.option(
    "--replica", "replica_name", envvar="HARNESS_REPLICA_WORKER", default=None,
    help="Name of a second legacy instance (A/A run): its agreement with legacy is the noise floor.",
)


@click.command("comparator")
@options.redis_connection
@legacy_worker
@candidate_worker
@replica_worker
@options.input_stream
@options.option("--timeout", "timeout_s", envvar="HARNESS_JOIN_TIMEOUT", default=30.0, type=click.FloatRange(0.001),
                help="Tapped input only (no input order): seconds to wait for a signal's partner before it counts "
                     "as missing. Otherwise a signal is missing once that side's results have moved past it.")
@options.option("--stall-after", "stall_after_s", envvar="HARNESS_STALL_AFTER", default=DEFAULT_STALL_AFTER_S,
                type=click.FloatRange(0.1), help="Seconds without progress, with input left, after which a side "
                "is reported stalled (the gate is then inconclusive).")
@options.option("--max-pending", envvar="HARNESS_MAX_PENDING", default=200_000, type=click.IntRange(1),
                help="Bound on signals waiting for their partner; the oldest are evicted (and counted).")
@options.option("--max-skew", envvar="HARNESS_MAX_SKEW", default=DEFAULT_MAX_SKEW, type=click.IntRange(1),
                help="Pending joins past which only the sides that are behind are read: the faster side's "
                     "results wait in Redis, so memory stays flat however far ahead it runs.")
@options.option("--window", envvar="HARNESS_WINDOW", default=1_000, type=click.IntRange(1),
                help="Pairs in the sliding recent-agreement window.")
@options.option("--group", envvar="HARNESS_COMPARATOR_GROUP", default=DEFAULT_GROUP,
                help="The comparator's consumer group on each results stream.")
@options.option("--checkpoint", "checkpoint_s", envvar="HARNESS_CHECKPOINT_S", default=1.0,
                type=click.FloatRange(0.01), help="Seconds between two state checkpoints (with acks).")
@options.option("--tap-legacy-stream", envvar="HARNESS_TAP_LEGACY_STREAM", default=None,
                help="Read legacy's side from this existing stream of JSON messages (field 'data') instead.")
@options.option("--tap-mapping", envvar="HARNESS_TAP_MAPPING", default="id=id,label=cluster",
                help="Where the tapped JSON keeps the id and label: 'id=PATH,label=PATH[,device=PATH]'.")
@options.option("--exit-when-idle", envvar="HARNESS_EXIT_WHEN_IDLE", default=None, type=click.FloatRange(0),
                help="Exit after this many seconds without results (drains, benchmarks).")
@options.partitions
@options.option("--lease-ttl", envvar="HARNESS_COMPARATOR_LEASE_TTL", default=10.0, type=click.FloatRange(1.0),
                help="With --partitions: seconds after which a dead shard's partitions move to the live shards.")
@options.metrics_port
@options.metrics_host
@options.log_level
@options.log_format
@options.experiment
def comparator_command(
    redis: options.RedisTarget, legacy_name: str, candidate_name: str, replica_name: str | None, input_stream: str,
    timeout_s: float, stall_after_s: float, max_pending: int, max_skew: int, window: int, group: str,
    checkpoint_s: float, tap_legacy_stream: str | None, tap_mapping: str, exit_when_idle: float | None,
    partitions: int, lease_ttl: float, metrics_port: int, metrics_host: str, log_level: str, log_format: str,
    experiment: str | None,
) -> None:
    """Join the control's and the candidate's results by signal id and keep the comparison in Redis.

    It serves the current experiment and switches when another one starts (a cutover, a rollback,
    `harness experiment start`); --experiment NAME serves that one only. Before any experiment is
    defined, it compares --legacy with --candidate (the experiment "default"). With --partitions P > 1 it is
    a shard: shards started with the same P share the partitions, one live shard each (docs/partitions.md).
    """
    configure_logging(log_level, json_lines=log_format == "json")
    feeds = default_feeds(legacy_name, candidate_name, replica_name)
    if tap_legacy_stream:
        feeds[0] = Feed("legacy", tap_legacy_stream, TapMapping.parse(tap_mapping))
    settings = ComparatorSettings(
        feeds=feeds, group=group, timeout_ms=timeout_s * 1000.0, max_pending=max_pending, window=window,
        checkpoint_s=checkpoint_s, exit_when_idle_s=exit_when_idle, input_stream=input_stream,
        stall_after_s=stall_after_s, max_skew=max_skew, follow=experiment is None,
    )
    client = redis.client()
    if experiment is not None:
        from harness.experiments import resolve

        settings.experiment = resolve(client, experiment, legacy_name, candidate_name)
    if partitions > 1:
        if tap_legacy_stream:
            raise click.UsageError("--tap-legacy-stream reads one stream: it has no partitions")
        from harness.comparator.shards import run_shard

        run_shard(client, settings, partitions, lease_ttl)
        return
    observer: ComparatorObserver | None = None
    if metrics_port:
        from harness.metrics.comparator import ComparatorMetrics
        from harness.metrics.server import new_registry, serve

        registry = new_registry()
        observer = ComparatorMetrics([feed.side for feed in feeds], registry)
    service = ComparatorService(client, settings, observer)
    if metrics_port:
        serve(registry, metrics_host, metrics_port)  # after the service restored its counts: no dip to 0
    import signal

    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    service.run()


# --- disagreements and HTML report (issue 13, parts 3 and 4) ---
recording = options.option(
    "--signals", "recording", envvar="HARNESS_SAMPLES_SIGNALS", default=None, type=options.signal_input,
    help="A recording of the input (e.g. from `harness record`): samples the input stream no longer holds.")


def pairs_source(command: Command) -> Command:
    """The two workers whose results are paired, and where their input samples are (stream, recording)."""
    for decorator in (recording, options.input_stream, candidate_worker, legacy_worker):
        command = decorator(command)
    return command


@click.command("report")
@options.redis_connection
@options.option("--format", "output_format", envvar="HARNESS_REPORT_FORMAT", default="table",
                type=click.Choice(["table", "json", "markdown", "html"]), help="Terminal table, harness.report/1 "
                "JSON, Markdown for a CI comment, or a self-contained HTML page with plots (needs --output).")
@options.option("--output", envvar="HARNESS_REPORT_OUTPUT", default=None, type=options.output_file,
                help="Write to this file instead of stdout.")
@pairs_source
@options.option("--curves", envvar="HARNESS_REPORT_CURVES", default=6, type=click.IntRange(0),
                help="HTML: disagreeing signals drawn beside a member of each side's cluster (0: none).")
@options.experiment
@options.partitions
def report_command(redis: options.RedisTarget, output_format: str, output: Path | None, legacy_name: str,
                   candidate_name: str, input_stream: str, recording: Path | None, curves: int,
                   experiment: str | None, partitions: int) -> None:
    """Print the comparison kept in Redis by `harness comparator`."""
    from harness.report.source import LiveSpec, load_report

    if output_format == "html" and output is None:
        raise click.UsageError("--format html writes a page: give --output FILE")
    loaded = load_report(None, None, LiveSpec(redis.client, str(redis), experiment, partitions))
    if loaded.report is None:
        raise HarnessError(loaded.problem or f"no comparison in Redis at {redis}")
    if output_format == "html" and output is not None:
        from harness.comparator.disagreements import html_panels
        from harness.report.html import render_html

        panels = html_panels(redis.client(), legacy_name, candidate_name, input_stream, recording, curves,
                             partitions, experiment)
        output.write_text(render_html(loaded.report, panels if curves else None), encoding="utf-8")
        click.echo(f"wrote the HTML report to {output}")
        return
    emit_report(loaded.report, output_format, output)


@click.command("disagreements")
@options.redis_connection
@pairs_source
@options.option("--limit", envvar="HARNESS_DISAGREEMENTS_LIMIT", default=50, type=click.IntRange(0),
                help="List at most this many, in result order (0: all).")
@options.option("--format", "output_format", envvar="HARNESS_DISAGREEMENTS_FORMAT", default="table",
                type=click.Choice(["table", "json", "csv"]), help="Terminal table, a JSON list, or CSV.")
@options.option("--with-samples", envvar="HARNESS_DISAGREEMENTS_WITH_SAMPLES", is_flag=True, default=False,
                help="Add each signal's input samples: from the input stream while it holds them, else --signals.")
@options.experiment
@options.partitions
def disagreements_command(redis: options.RedisTarget, legacy_name: str, candidate_name: str, input_stream: str,
                          recording: Path | None, limit: int, output_format: str, with_samples: bool,
                          experiment: str | None, partitions: int) -> None:
    """The signals both workers clustered, whose candidate label mapped into legacy's label space differs."""
    from harness.comparator import disagreements as found
    from harness.comparator.export import all_pairs

    client = redis.client()
    pairs = all_pairs(client, legacy_name, candidate_name, partitions, experiment)
    chosen = found.disagreements(pairs, limit or None)
    samples = None
    if with_samples:
        entries = dict(zip(chosen["signal_id"].astype(str), chosen["legacy_entry"].astype(str), strict=True))
        samples = found.load_samples(client, input_stream, recording, entries, partitions, found.partition_of(pairs))
    rows = found.records(chosen, samples)
    click.echo(found.render(rows, output_format, with_samples=with_samples))
# --- end of disagreements and HTML report ---


def emit_report(report: dict[str, object], output_format: str, output: Path | None) -> None:
    from harness.report.render import render_markdown, render_terminal

    if output_format == "json":
        text = json.dumps(report, indent=2)
    elif output_format == "markdown":
        text = render_markdown(report)
    else:
        from rich.console import Console

        if output is None:
            render_terminal(report, Console())
            return
        with output.open("w", encoding="utf-8") as file:
            render_terminal(report, Console(file=file))
        return
    if output:
        output.write_text(text + "\n")
    else:
        click.echo(text)


@click.command("export")
@options.redis_connection
@legacy_worker
@candidate_worker
@options.option("--pairs", "pairs_path", envvar="HARNESS_EXPORT_PAIRS", required=True,
                type=options.table_output, help="Output file: .parquet or .csv.")
@options.experiment
@options.partitions
def export_command(redis: options.RedisTarget, legacy_name: str, candidate_name: str, pairs_path: Path,
                   experiment: str | None, partitions: int) -> None:
    """Write every matched pair (both labels, the mapped label, agreement, outcomes, latencies) to Parquet or CSV."""
    from harness.comparator.export import export_experiment
    from harness.experiments import resolve

    client = redis.client()
    chosen = resolve(client, experiment, legacy_name, candidate_name)
    count = export_experiment(client, chosen, pairs_path, partitions)
    click.echo(f"wrote {count} matched pairs of experiment {chosen.name} to {pairs_path}")


@click.command("tap")
@options.redis_connection
@options.option("--channel", "tap_channel", envvar="HARNESS_TAP_CHANNEL", required=True,
                help="The production output channel to copy from (pub/sub keeps nothing: what is published "
                     "while tap is not running is lost).")
@options.option("--to-stream", envvar="HARNESS_TAP_STREAM", default=keys.tap_stream("legacy"),
                help="Stream that receives a copy of every message, for `comparator --tap-legacy-stream`.")
def tap_command(redis: options.RedisTarget, tap_channel: str, to_stream: str) -> None:
    """Copy an existing production output channel into a stream the comparator can read."""
    from harness.comparator.tap import bridge_channel

    # listen() blocks until a message arrives, however long: no socket timeout for this client
    bridge_channel(redis.client(socket_timeout=None), tap_channel, to_stream)


COMMANDS = [comparator_command, report_command, export_command, tap_command, disagreements_command]
