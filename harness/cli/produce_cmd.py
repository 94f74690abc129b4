"""`harness produce` (synthetic or recorded signals), `harness record` (capture live input) and `harness trim`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import options
from harness.runtime.logs import configure_logging
from harness.transport.trim import trim_stream


@click.command("produce")
@options.redis_connection
@options.input_stream
@click.option("--count", envvar="HARNESS_PRODUCE_COUNT", show_envvar=True, show_default=True, default=1000,
              type=click.IntRange(0), help="Synthetic signals to generate (ignored with --from).")
@click.option("--seed", envvar="HARNESS_SEED", show_envvar=True, show_default=True, default=0, type=int,
              help="Random seed: the same seed gives the same signals.")
@click.option("--rate", envvar="HARNESS_PRODUCE_RATE", show_envvar=True, default=None, type=click.FloatRange(0.001),
              help="Signals per second; without it, as fast as possible.")
@click.option("--devices", envvar="HARNESS_PRODUCE_DEVICES", show_envvar=True, show_default=True, default=8,
              type=click.IntRange(1), help="Number of synthetic devices.")
@click.option("--samples", envvar="HARNESS_PRODUCE_SAMPLES", show_envvar=True, show_default=True, default=1000,
              type=click.IntRange(1), help="Samples per synthetic signal.")
@options.option("--shape-share", envvar="HARNESS_PRODUCE_SHAPE_SHARE", default=0.0, type=click.FloatRange(0, 1),
                help="Share of synthetic signals whose faults differ only in waveform shape (equal summary "
                     "statistics): what only a shape-aware candidate can tell apart.")
@click.option("--out", "out_path", envvar="HARNESS_PRODUCE_OUT", show_envvar=True, default=None,
              type=options.signal_output,
              help="Write the signals to this file (.parquet, .csv, .jsonl) instead of Redis.")
@click.option("--from", "from_path", envvar="HARNESS_PRODUCE_FROM", show_envvar=True, default=None,
              type=options.signal_input,
              help="Replay recorded signals from a file (.parquet, .csv, .jsonl), keeping their ids.")
@click.option("--publish-channel", envvar="HARNESS_PUBLISH_CHANNEL", show_envvar=True, default=None,
              help="Publish on this pub/sub channel instead of the input stream.")
@click.option("--trim/--no-trim", envvar="HARNESS_PRODUCE_TRIM", show_envvar=True, default=False, show_default=True,
              help="Trim the input stream as it goes, only below what every consumer group has acked.")
@click.option("--min-groups", "--trim-min-groups", "min_groups", envvar="HARNESS_TRIM_MIN_GROUPS", show_envvar=True,
              show_default=True, default=2,
              type=click.IntRange(1), help="With --trim: trim nothing until at least this many consumer groups exist.")
@options.option("--run-id", envvar="HARNESS_PRODUCE_RUN_ID", default=None,
                help="Resume this run (same signals): send only what it has not written yet. Default: a new run.")
@options.option("--max-wait", "max_wait_s", envvar="HARNESS_PRODUCE_MAX_WAIT", default=None,
                type=click.FloatRange(0), help="Stop after this many seconds of store errors (unavailable, full); "
                "default: retry until the store recovers.")
@options.partitions
@options.log_level
@options.log_format
def produce_command(
    redis: options.RedisTarget, input_stream: str, partitions: int, count: int, seed: int, rate: float | None,
    devices: int, samples: int, shape_share: float, out_path: Path | None, from_path: Path | None,
    publish_channel: str | None, trim: bool, min_groups: int, run_id: str | None, max_wait_s: float | None,
    log_level: str, log_format: str,
) -> None:
    """Send synthetic signals (or replay a recorded file) to the input stream.

    Each batch is written with the produced counter in one step; a store error is retried with
    backoff; `--run-id` resumes an interrupted run without sending anything twice.
    """
    from harness.producer.files import read_signals, write_signals  # pandas: slow to import
    from harness.producer.publisher import new_run_id, publish_signals
    from harness.producer.synthetic import generate_signals

    signals = (read_signals(from_path) if from_path
               else generate_signals(count, seed, devices=devices, samples=samples, shape_share=shape_share))
    if out_path is not None:
        written = write_signals(out_path, signals)
        click.echo(f"wrote {written} signals to {out_path}")
        return
    configure_logging(log_level, json_lines=log_format == "json")
    run_id = run_id or new_run_id()
    sent = publish_signals(redis.client(), signals, input_stream, rate=rate, channel=publish_channel, trim=trim,
                           trim_min_groups=min_groups, run_id=run_id, max_wait_s=max_wait_s,
                           partitions=partitions)
    target = f"channel {publish_channel}" if publish_channel else f"stream {input_stream}"
    if partitions > 1 and not publish_channel:
        target += f" ({partitions} partitions)"
    click.echo(f"sent {sent} signals to {target} (run {run_id})")


@click.command("record")
@options.redis_connection
@options.input_stream
@options.option("--out", "out_path", envvar="HARNESS_RECORD_OUT", required=True, type=options.signal_output,
                help="Signal file to write (.parquet, .csv, .jsonl), for `harness backtest`.")
@options.option("--count", envvar="HARNESS_RECORD_COUNT", default=None, type=click.IntRange(1),
                help="Stop after this many signals.")
@options.option("--seconds", envvar="HARNESS_RECORD_SECONDS", default=None, type=click.FloatRange(0.001),
                help="Stop after this many seconds (with --count: whichever comes first).")
@options.option("--from-id", "from_id", envvar="HARNESS_RECORD_FROM", default="$",
                help="Stream id to read after: '$' for entries arriving from now on, '0' for the whole stream.")
def record_command(redis: options.RedisTarget, input_stream: str, out_path: Path, count: int | None,
                   seconds: float | None, from_id: str) -> None:
    """Capture signals from the live input stream into a file, without a consumer group (production is
    not disturbed)."""
    from harness.recorder import record

    result = record(redis.client(), input_stream, out_path, count=count, seconds=seconds, start_id=from_id)
    skipped = f" ({result.skipped:,} undecodable entries skipped)" if result.skipped else ""
    click.echo(f"recorded {result.recorded:,} signals from {input_stream} to {out_path}{skipped}; "
               f"last entry {result.last_id}")


@click.command("trim")
@options.redis_connection
@click.option("--stream", envvar="HARNESS_TRIM_STREAM", show_envvar=True, default=None,
              help="Stream to trim (default: the input stream).")
@options.input_stream
@click.option("--min-groups", envvar="HARNESS_TRIM_MIN_GROUPS", show_envvar=True, show_default=True, default=2,
              type=click.IntRange(1), help="Trim nothing until at least this many consumer groups exist.")
def trim_command(redis: options.RedisTarget, stream: str | None, input_stream: str, min_groups: int) -> None:
    """Remove the entries every consumer group has read and acked; never an unread one."""
    removed = trim_stream(redis.client(), stream or input_stream, min_groups=min_groups)
    click.echo(f"trimmed {removed} entries from {stream or input_stream}")


COMMANDS = [produce_command, record_command, trim_command]
