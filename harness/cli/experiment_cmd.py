"""`harness experiment start|list|show|stop`: options and wiring only."""

from __future__ import annotations

import json

import click

from harness.cli import options


@click.group("experiment")
def experiment_group() -> None:
    """Experiments: a named comparison of a control (the primary) with a candidate (a shadow).

    The comparator serves the current one and switches when another starts; a cutover or a rollback
    ends it and starts the next, a retire ends it. Finished experiments keep their final report.
    """


@experiment_group.command("start")
@click.argument("name")
@options.redis_connection
@options.input_stream
@options.option("--control", envvar="HARNESS_EXPERIMENT_CONTROL", required=True,
                help="The worker whose results are the reference: the primary, serving production.")
@options.option("--candidate", envvar="HARNESS_EXPERIMENT_CANDIDATE", required=True,
                help="The shadow worker compared with it, e.g. candidate-v2.")
def start_command(name: str, redis: options.RedisTarget, input_stream: str, control: str, candidate: str) -> None:
    """Start experiment NAME from the input's current end (the current one ends)."""
    from harness import experiments
    from harness.transport.roles import read_roles

    client = redis.client()
    started, ended = experiments.start(client, name, control, candidate, input_stream=input_stream)
    if ended is not None:
        click.echo(f"ended experiment {ended.name} ({ended.control} vs {ended.candidate})")
    click.echo(f"started experiment {started.name}: {control} (control) vs {candidate} (candidate), on the signals "
               f"after input entry {started.start_entry}; a running `harness comparator` switches to it")
    primary = read_roles(client).primary
    if primary is not None and primary != control:
        click.echo(f"note: the control {control} is not the primary ({primary})", err=True)


@experiment_group.command("list")
@options.redis_connection
def list_command(redis: options.RedisTarget) -> None:
    """Every experiment, oldest first; the current one is marked with '*'."""
    from harness import experiments
    from harness.cutover.progress import when

    client = redis.client()
    running = experiments.current(client)
    found = experiments.load_all(client) or ([running] if running is not None else [])
    for experiment in found:
        mark = "*" if running is not None and running.name == experiment.name else " "
        ended = "running" if experiment.running else f"ended {when(experiment.ended_ms)}: {experiment.end_reason}"
        started = "implicit" if experiment.started_ms is None else f"started {when(experiment.started_ms)}"
        click.echo(f"{mark} {experiment.name}: {experiment.control} vs {experiment.candidate}; {started}; {ended}")


@experiment_group.command("show")
@click.argument("name", envvar="HARNESS_EXPERIMENT", required=False)
@options.redis_connection
@options.option("--json", "as_json", envvar="HARNESS_EXPERIMENT_JSON", is_flag=True, default=False,
                help="Print the experiment and its report as JSON.")
def show_command(name: str | None, redis: options.RedisTarget, as_json: bool) -> None:
    """NAME's headline and counts (default: the current experiment, else the latest): live while it runs,
    the final report once it has ended."""
    from harness import experiments
    from harness.comparator.scope import count_lines, experiment_report

    client = redis.client()
    experiment = experiments.resolve(client, name)
    report = experiment_report(client, experiment)
    if as_json:
        click.echo(json.dumps({"experiment": experiment.describe(), "report": report}, indent=2))
        return
    for line in count_lines(experiment, report):
        click.echo(line)


@experiment_group.command("stop")
@click.argument("name", envvar="HARNESS_EXPERIMENT", required=False)
@options.redis_connection
@options.option("--reason", envvar="HARNESS_REASON", default="stopped by hand", help="Why: kept with it.")
def stop_command(name: str | None, redis: options.RedisTarget, reason: str) -> None:
    """End NAME (default: the current experiment); the comparator keeps its final report and idles."""
    from harness import experiments
    from harness.errors import HarnessError

    ended = experiments.stop(redis.client(), name, reason=reason)
    if ended is None:
        raise HarnessError("no experiment is running: `harness experiment list` shows them")
    click.echo(f"ended experiment {ended.name} ({ended.control} vs {ended.candidate}): {ended.end_reason}")


COMMANDS: list[click.Command] = [experiment_group]
