"""`harness cutover`, `harness rollback`, `harness retire` and `harness status`: options and wiring only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from harness.cli import options
from harness.cutover.plan import CutoverRequest, GateOutcome, describe_plan, retire, run_cutover, run_rollback
from harness.cutover.roles import read_roles
from harness.cutover.status import status
from harness.cutover.stoppers import make_stopper

stop_with = options.option(
    "--stop-with", envvar="HARNESS_STOP_WITH", default="none", type=click.Choice(["process", "docker", "none"]),
    help="How workers are stopped/started: process (pid from the heartbeat), docker (container labelled "
         "harness.worker=NAME), none (drain only; your tooling stops the process).",
)
force = options.option("--force", envvar="HARNESS_FORCE", is_flag=True, default=False,
                       help="Override the gate or the rollback window; needs --reason, and is audited.")
reason = options.option("--reason", envvar="HARNESS_REASON", default=None, help="Why: recorded in the audit trail.")
who = options.option("--actor", envvar="HARNESS_ACTOR", default=None,
                     help="Who runs this, for the audit trail (default: user@host).")


def _force_reason(force_flag: bool, why: str | None) -> str | None:
    if force_flag and not why:
        raise click.UsageError("--force needs --reason TEXT: overrides are recorded in the audit trail")
    return why if force_flag else None


@click.command("cutover")
@options.redis_connection
@options.input_stream
@options.option("--to", "target", envvar="HARNESS_CUTOVER_TO", default="candidate", help="The worker to promote.")
@options.option("--from", "retiring", envvar="HARNESS_CUTOVER_FROM", default="legacy", help="The worker to retire.")
@options.option("--policy", envvar="HARNESS_POLICY", default=None,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Gate policy (TOML) that must pass before the switch.")
@force
@reason
@options.option("--dry-run", envvar="HARNESS_DRY_RUN", is_flag=True, default=False,
                help="Print the plan; change nothing.")
@options.option("--rollback-window", envvar="HARNESS_ROLLBACK_WINDOW", default=3600.0, type=click.FloatRange(0),
                help="Seconds during which the retired worker's group and state are kept for a rollback.")
@options.option("--drain-timeout", envvar="HARNESS_DRAIN_TIMEOUT", default=60.0, type=click.FloatRange(1),
                help="Seconds to wait for the retired worker to drain and stop.")
@stop_with
@who
def cutover_command(redis: options.RedisTarget, input_stream: str, target: str, retiring: str, policy: Path | None,
                    force: bool, reason: str | None, dry_run: bool, rollback_window: float, drain_timeout: float,
                    stop_with: str, actor: str | None) -> None:
    """Gate, then switch the primary with fencing, drain the old one, and keep a rollback window.

    Re-running it after a crash completes the cutover. Exit 1 when the gate refuses.
    """
    client = redis.client()
    forced = _force_reason(force, reason)
    request = CutoverRequest(target, retiring, forced, rollback_window, drain_timeout, actor, input_stream)
    if dry_run:
        for line in describe_plan(client, request, str(policy) if policy else None):
            click.echo(line)
        click.echo("dry run: nothing was changed")
        return
    if policy is None and forced is None:
        raise click.UsageError("give --policy FILE (the gate), or --force --reason TEXT")

    def gate() -> GateOutcome:
        from harness.gate.live import gate_summary, live_gate

        assert policy is not None
        result = live_gate(client, policy, str(redis))
        return GateOutcome(str(result.verdict), gate_summary(result))

    roles = run_cutover(client, request, make_stopper(stop_with), gate)
    click.echo(f"{roles.primary} is primary (epoch {roles.epoch}); {retiring} drained; "
               f"rollback possible until {_when(roles.rollback_until_ms)}")


@click.command("rollback")
@options.redis_connection
@options.input_stream
@options.option("--to", "target", envvar="HARNESS_ROLLBACK_TO", default="legacy", help="The worker to restore.")
@force
@reason
@stop_with
@options.option("--start-args", envvar="HARNESS_ROLLBACK_START_ARGS", default=None,
                help="With --stop-with process: the `harness` arguments that start the worker again.")
@options.option("--catch-up", envvar="HARNESS_ROLLBACK_CATCH_UP", default=30.0, type=click.FloatRange(0),
                help="Seconds to let the restored worker catch up as a shadow before it becomes primary "
                     "(shorter: production results wait for it instead; none is lost either way).")
@who
def rollback_command(redis: options.RedisTarget, input_stream: str, target: str, force: bool, reason: str | None,
                     stop_with: str, start_args: str | None, catch_up: float, actor: str | None) -> None:
    """Within the rollback window, make the previous primary primary again; it resumes where it stopped."""
    client = redis.client()
    stopper = make_stopper(stop_with, (start_args or "").split())
    roles = run_rollback(client, stopper, target, _force_reason(force, reason), catch_up_s=catch_up,
                         who=actor, input_stream=input_stream)
    click.echo(f"{roles.primary} is primary again (epoch {roles.epoch})")


@click.command("retire")
@click.argument("worker", envvar="HARNESS_RETIRE_WORKER")
@options.redis_connection
@options.input_stream
@force
@reason
@who
def retire_command(worker: str, redis: options.RedisTarget, input_stream: str, force: bool, reason: str | None,
                   actor: str | None) -> None:
    """After the rollback window, delete WORKER's consumer group and cluster state."""
    client = redis.client()
    removed = retire(client, worker, input_stream, _force_reason(force, reason), who=actor)
    click.echo(f"retired {worker}: {removed} keys and groups removed")


@click.command("status")
@options.redis_connection
@options.input_stream
@options.option("--json", "as_json", envvar="HARNESS_STATUS_JSON", is_flag=True, default=False,
                help="Machine-readable output.")
def status_command(redis: options.RedisTarget, input_stream: str, as_json: bool) -> None:
    """Roles, epoch, the lag of each consumer group, and the last audit entries."""
    client = redis.client()
    state = status(client, input_stream)
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    roles = read_roles(client)
    console.print(f"primary: [bold]{roles.primary or 'none'}[/bold]  epoch: {roles.epoch}  "
                  f"production watermark: {roles.watermark}  rollback until: {_when(roles.rollback_until_ms)}")
    groups = Table("consumer group", "state", "lag", "pending", "draining", "model", title=f"groups on {input_stream}")
    for name, info in state["groups"].items():
        groups.add_row(name, info["state"], str(info["lag"]), str(info["pending"]), str(info["draining"]),
                       str(info["model_version"] or ""))
    console.print(groups)
    trail = Table("at", "action", "step", "epoch", "who", "details", title="audit (latest last)")
    for entry in state["audit"]:
        details = {k: v for k, v in entry.items() if k not in ("at", "action", "step", "epoch", "who")}
        trail.add_row(entry["at"], entry["action"], entry["step"], entry["epoch"], entry["who"], json.dumps(details))
    console.print(trail)


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


COMMANDS = [cutover_command, rollback_command, retire_command, status_command]
