"""`harness cutover`, `harness rollback`, `harness retire` and `harness status`: options and wiring only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from harness.cli import options
from harness.cli.notify_cmd import notifies
from harness.cutover import plan
from harness.cutover.plan import (
    CutoverRequest,
    GateOutcome,
    RollbackRequest,
    describe_plan,
    run_cutover,
    run_rollback,
)
from harness.cutover.progress import when
from harness.cutover.retire import retire
from harness.cutover.serving import DEFAULT_MAX_TARGET_LAG, DEFAULT_START_TIMEOUT_S, ServingBound
from harness.cutover.status import status
from harness.cutover.stoppers import make_stopper

F = TypeVar("F", bound=Callable[..., Any])

stop_with = options.option(
    "--stop-with", envvar="HARNESS_STOP_WITH", default="none", type=click.Choice(["process", "docker", "none"]),
    help="How workers are stopped/started: process (pid of its lease; started again from the command line "
         "recorded when a cutover stopped it), docker (containers labelled harness.worker=NAME, compose "
         "stacks too), none (drain only; your tooling stops and starts the process).",
)
max_target_lag = options.option(
    "--max-target-lag", envvar="HARNESS_MAX_TARGET_LAG", default=DEFAULT_MAX_TARGET_LAG, type=click.IntRange(0),
    help="The worker that takes production must be at most this many input entries behind; the switch "
         "waits for it (--start-timeout), then is refused.",
)
start_timeout = options.option(
    "--start-timeout", envvar="HARNESS_START_TIMEOUT", default=DEFAULT_START_TIMEOUT_S, type=click.FloatRange(0),
    help="Seconds to wait for the worker that takes production to serve (live lease, consumer group, lag "
         "under --max-target-lag), after starting it when the backend can.",
)
worker_log_dir = options.option(
    "--worker-log-dir", envvar="HARNESS_WORKER_LOG_DIR", default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="With --stop-with process: the folder of the log files of the workers it starts "
         "(default: $XDG_STATE_HOME/harness/logs, or ~/.local/state/harness/logs); `status` shows them.",
)
reason = options.option("--reason", envvar="HARNESS_REASON", default=None, help="Why: recorded in the audit trail.")
who = options.option("--actor", envvar="HARNESS_ACTOR", default=None,
                     help="Who runs this, for the audit trail (default: user@host).")


def force(help_text: str) -> Callable[[F], F]:
    return options.option("--force", envvar="HARNESS_FORCE", is_flag=True, default=False,
                          help=help_text + " Needs --reason, and is audited.")


def _force_reason(force_flag: bool, why: str | None) -> str | None:
    if force_flag and not why:
        raise click.UsageError("--force needs --reason TEXT: overrides are recorded in the audit trail")
    return why if force_flag else None


def _say(line: str) -> None:
    click.echo(line)  # click.echo flushes: each step shows as it happens


@click.command("cutover")
@options.redis_connection
@options.input_stream
@options.partitions
@options.option("--to", "target", envvar="HARNESS_CUTOVER_TO", default="candidate", help="The worker to promote.")
@options.option("--from", "retiring", envvar="HARNESS_CUTOVER_FROM", default="legacy", help="The worker to retire.")
@options.option("--policy", envvar="HARNESS_POLICY", default=None,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Gate policy (TOML) that must pass before the switch.")
@force("Skip the gate.")
@reason
@options.option("--dry-run", envvar="HARNESS_DRY_RUN", is_flag=True, default=False,
                help="Print the plan, whether the target serves and the gate's verdict; change nothing. "
                     "Exit 0 pass, 1 refused, 2 inconclusive.")
@options.option("--rollback-window", envvar="HARNESS_ROLLBACK_WINDOW", default=3600.0, type=click.FloatRange(0),
                help="Seconds during which the retired worker's group and state are kept for a rollback.")
@options.option("--drain-timeout", envvar="HARNESS_DRAIN_TIMEOUT", default=60.0, type=click.FloatRange(1),
                help="Seconds to wait for the retired worker to drain and stop.")
@max_target_lag
@start_timeout
@stop_with
@worker_log_dir
@who
@notifies("cutover")  # to the webhook when one is set (docs/operations.md)
def cutover_command(redis: options.RedisTarget, input_stream: str, partitions: int, target: str, retiring: str,
                    policy: Path | None,
                    force: bool, reason: str | None, dry_run: bool, rollback_window: float, drain_timeout: float,
                    max_target_lag: int, start_timeout: float, stop_with: str, worker_log_dir: Path | None,
                    actor: str | None) -> None:
    """Gate, then switch the primary with fencing, drain the old one, and keep a rollback window.

    The target must serve first (live lease, consumer group, lag under --max-target-lag). Each step
    is printed as it happens. Re-running it after a crash completes the cutover. Exit 1 when refused.
    """
    client = redis.client()
    forced = _force_reason(force, reason)
    request = CutoverRequest(target, retiring, forced, rollback_window, drain_timeout, actor, input_stream,
                             ServingBound(max_target_lag, start_timeout), partitions)

    def gate() -> GateOutcome:
        from harness.gate.live import gate_summary, live_gate

        assert policy is not None
        result = live_gate(client, policy, str(redis))
        return GateOutcome(str(result.verdict), gate_summary(result))

    if dry_run:
        for line in describe_plan(client, request, str(policy) if policy else None):
            _say(line)
        click.get_current_context().exit(plan.dry_run(client, request, gate if policy else None, _say))
    if policy is None and forced is None:
        raise click.UsageError("give --policy FILE (the gate), or --force --reason TEXT")
    stopper = make_stopper(stop_with, redis_url=redis.url, log_dir=worker_log_dir, partitions=partitions)
    roles = run_cutover(client, request, stopper, gate, say=_say)
    _say(f"{roles.primary} is primary (epoch {roles.epoch}); {retiring} drained; "
         f"rollback possible until {when(roles.rollback_until_ms)}")


@click.command("rollback")
@options.redis_connection
@options.input_stream
@options.partitions
@options.option("--to", "target", envvar="HARNESS_ROLLBACK_TO", default="legacy", help="The worker to restore.")
@force("Roll back after the window has closed, or to a worker that was not the previous primary.")
@reason
@stop_with
@options.option("--start-args", envvar="HARNESS_ROLLBACK_START_ARGS", default=None,
                help="With --stop-with process: the `harness` arguments that start the worker again "
                     "(default: the command line recorded when the cutover stopped it).")
@worker_log_dir
@options.option("--catch-up", envvar="HARNESS_ROLLBACK_CATCH_UP", default=30.0, type=click.FloatRange(0),
                help="Seconds to let the restored worker catch up as a shadow before it becomes primary "
                     "(shorter: production results wait for it instead; none is lost either way).")
@max_target_lag
@start_timeout
@who
@notifies("rollback")  # to the webhook when one is set (docs/operations.md)
def rollback_command(redis: options.RedisTarget, input_stream: str, partitions: int, target: str, force: bool,
                     reason: str | None,
                     stop_with: str, start_args: str | None, worker_log_dir: Path | None, catch_up: float,
                     max_target_lag: int, start_timeout: float, actor: str | None) -> None:
    """Within the rollback window, make the previous primary primary again; it resumes where it stopped.

    Refused, with production left as it is, when that worker cannot be shown to serve (started
    through --stop-with when it knows how), or after `harness retire` removed it.
    """
    client = redis.client()
    stopper = make_stopper(stop_with, (start_args or "").split(), redis_url=redis.url, log_dir=worker_log_dir,
                           partitions=partitions)
    request = RollbackRequest(target, _force_reason(force, reason), catch_up, actor, input_stream,
                              ServingBound(max_target_lag, start_timeout), partitions)
    roles = run_rollback(client, stopper, request, say=_say)
    _say(f"{roles.primary} is primary again (epoch {roles.epoch})")


@click.command("retire")
@click.argument("worker", envvar="HARNESS_RETIRE_WORKER")
@options.redis_connection
@options.input_stream
@force("Retire the previous primary while its rollback window is still open (no rollback to it after).")
@reason
@who
@notifies("retire")  # to the webhook when one is set (docs/operations.md)
def retire_command(worker: str, redis: options.RedisTarget, input_stream: str, force: bool, reason: str | None,
                   actor: str | None) -> None:
    """After the rollback window, delete WORKER's consumer group and cluster state (its results stay)."""
    client = redis.client()
    removed = retire(client, worker, input_stream, _force_reason(force, reason), who=actor)
    _say(f"retired {worker}: {removed} keys and groups removed")


@click.command("status")
@options.redis_connection
@options.input_stream
@options.partitions
@options.option("--json", "as_json", envvar="HARNESS_STATUS_JSON", is_flag=True, default=False,
                help="Machine-readable output.")
def status_command(redis: options.RedisTarget, input_stream: str, partitions: int, as_json: bool) -> None:
    """Roles, the rollback window, each worker (lease holder, lag, log file), the comparator, the last audit entries."""
    state = status(redis.client(), input_stream, partitions)
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    roles = state["roles"]
    console.print(f"primary: [bold]{roles['primary'] or 'none'}[/bold]  epoch: {roles['epoch']}  "
                  f"production watermark: {roles['watermark']}  rollback: {state['rollback']['line']}")
    console.print(f"workers on {input_stream}:", highlight=False)
    for name, info in state["groups"].items():
        fields = [info["state"], f"lease {info['lease_holder'] or 'none (not running)'}", f"lag {_count(info['lag'])}",
                  f"pending {_count(info['pending'])}", *(["draining"] if info["draining"] else []),
                  *([f"model {info['model_version']}"] if info["model_version"] else []), f"log {info['log'] or '-'}"]
        console.print(f"  {name}: " + "; ".join(fields), highlight=False, soft_wrap=True)
    comparator = state["comparator"]
    if comparator is None:
        console.print("comparator: no summary yet (is `harness comparator` running?)")
    else:
        missing = ", ".join(f"{k} {_count(v)}" for k, v in comparator["missing"].items()) or "none"
        console.print(f"comparator (experiment {comparator['experiment']}): updated {comparator['updated']}; "
                      f"matched {_count(comparator['matched'])}; missing: {missing}")
    trail = Table("at", "action", "step", "epoch", "who", "details", title="audit (latest last)")
    for entry in state["audit"]:
        details = {k: v for k, v in entry.items() if k not in ("at", "action", "step", "epoch", "who")}
        trail.add_row(entry["at"], entry["action"], entry["step"], entry["epoch"], entry["who"],
                      ", ".join(f"{k}={v}" for k, v in details.items()))
    console.print(trail)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


COMMANDS = [cutover_command, rollback_command, retire_command, status_command]
