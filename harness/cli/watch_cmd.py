"""`harness watch`: the live terminal dashboard; options and the refresh loop only (harness/watch.py does the rest)."""

from __future__ import annotations

import contextlib
import time

import click

from harness.cli import options
from harness.cli.compare_cmd import candidate_worker, legacy_worker, replica_worker


@click.command("watch")
@options.redis_connection
@options.input_stream
@options.experiment
@legacy_worker
@candidate_worker
@replica_worker
@options.option("--interval", "interval_s", envvar="HARNESS_WATCH_INTERVAL", default=1.0,
                type=click.FloatRange(0.1), help="Seconds between two refreshes.")
@options.option("--once", envvar="HARNESS_WATCH_ONCE", is_flag=True, default=False,
                help="Print one snapshot and exit (no live refresh): for scripts and logs.")
@options.partitions
def watch_command(redis: options.RedisTarget, input_stream: str, experiment: str | None, legacy_name: str,
                  candidate_name: str, replica_name: str | None, interval_s: float, once: bool,
                  partitions: int) -> None:
    """Live dashboard: each worker's rate, lag, heartbeat, dead letters and errors; agreement; latency; roles.

    Refreshes every --interval seconds until Ctrl-C (exit 0).
    """
    from rich.console import Console
    from rich.live import Live

    from harness.watch import Collector, render

    workers = {"legacy": legacy_name, "candidate": candidate_name}
    if replica_name:
        workers["replica"] = replica_name
    collector = Collector(redis.client(), str(redis), workers, experiment=experiment, input_stream=input_stream,
                          partitions=partitions)
    console = Console()
    if once:
        console.print(render(collector.collect()))
        return
    # Ctrl-C is how a dashboard is closed: Live's exit has restored the cursor by the time it is suppressed.
    with contextlib.suppress(KeyboardInterrupt), Live(render(collector.collect()), console=console,
                                                      auto_refresh=False) as live:
        while True:
            time.sleep(interval_s)
            live.update(render(collector.collect()), refresh=True)


COMMANDS = [watch_command]
