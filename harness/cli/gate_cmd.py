"""`harness gate`, `harness threshold` and `harness backtest`: options and wiring only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli import options

if TYPE_CHECKING:
    from harness.backtest import BacktestResult

PROGRESS_MIN_SIGNALS = 10_000  # files at least this long (or of unknown length) get a progress bar


candidate_spec = options.option(
    "--candidate", "candidate", envvar="HARNESS_BACKTEST_CANDIDATE", default="candidate",
    help="Candidate for a backtest: 'candidate', 'legacy' or MODULE:FACTORY.",
)
candidate_env = options.option(
    "--candidate-env", "candidate_env", envvar="HARNESS_BACKTEST_CANDIDATE_ENV", multiple=True,
    metavar="KEY=VALUE", callback=options.env_over_process, help="Environment of the backtest candidate, over this "
    "process's (repeatable), e.g. HARNESS_CANDIDATE_CENTROID=mean.",
)
control_spec = click.option(  # click's own: two variables, the old name still read (options.option takes one)
    "--control", "--legacy", "control", envvar=["HARNESS_BACKTEST_CONTROL", "HARNESS_BACKTEST_LEGACY"],
    show_envvar=True, show_default=True, default="legacy",
    help="Control for a backtest, reported as the 'legacy' side: 'legacy', 'candidate', MODULE:FACTORY, or "
         "'none' to score the candidate alone against the true kinds (--legacy: the old name).",
)
control_env = options.option(
    "--control-env", "control_env", envvar="HARNESS_BACKTEST_CONTROL_ENV", multiple=True, metavar="KEY=VALUE",
    callback=options.env_over_process, help="Environment of the backtest control, over this process's (repeatable).",
)
batch_size = options.option(
    "--batch-size", envvar="HARNESS_BACKTEST_BATCH_SIZE", default=500, type=click.IntRange(1),
    help="Signals per batch in a backtest, as the worker runtime reads them.",
)
path_type = click.Path(dir_okay=False, path_type=Path)


@click.command("gate")
@options.option("--policy", envvar="HARNESS_POLICY", default=None, type=path_type,
                help="TOML policy file (see policies/default.toml and docs/gate.md). Required.")
@options.redis_connection
@options.option("--report", "report_path", envvar="HARNESS_GATE_REPORT", default=None, type=path_type,
                help="Judge a saved harness.report/1 JSON file instead of the live comparison in Redis.")
@options.option("--backtest", "backtest_path", envvar="HARNESS_GATE_BACKTEST", default=None, type=path_type,
                help="Judge a backtest of this signal file (.parquet, .csv, .jsonl): the control (legacy) vs "
                     "the candidate in-process.")
@candidate_spec
@candidate_env
@control_spec
@control_env
@batch_size
@options.option("--junit", "junit_path", envvar="HARNESS_GATE_JUNIT", default=None, type=options.output_file,
                help="Also write JUnit XML: one testcase per rule.")
@options.option("--markdown", "markdown_path", envvar="HARNESS_GATE_MARKDOWN", default=None,
                type=options.output_file, help="Also write the verdict as Markdown (for a CI comment).")
@options.option("--json", "as_json", envvar="HARNESS_GATE_JSON", is_flag=True, default=False,
                help="Print the verdict as JSON (harness.gate/1) instead of text.")
@options.experiment
@options.partitions
def gate_command(
    policy: Path | None, redis: options.RedisTarget, report_path: Path | None, backtest_path: Path | None,
    candidate: str, candidate_env: dict[str, str], control: str, control_env: dict[str, str], batch_size: int,
    junit_path: Path | None, markdown_path: Path | None, as_json: bool, experiment: str | None, partitions: int,
) -> None:
    """Judge legacy vs candidate against a policy: the live comparison in Redis (default), a saved
    report, or a backtest.

    Exit codes: 0 pass; 1 fail, or data missing, stale, corrupt or errored (never a pass);
    2 inconclusive (too few matched pairs).
    """
    from harness.gate import load_policy
    from harness.gate.live import judge_loaded
    from harness.gate.verdict import terminal_lines, to_json, to_json_text, to_junit, to_markdown
    from harness.notify import notify_gate
    from harness.report.source import BacktestSpec, LiveSpec, load_report

    # exit 1, not click's usage exit 2: a gate that cannot run must never look inconclusive
    if policy is None:
        raise click.ClickException("give --policy FILE (or HARNESS_POLICY): the gate needs a policy")
    if report_path is not None and backtest_path is not None:
        raise click.ClickException("give --report FILE or --backtest FILE, not both")
    loaded_policy = load_policy(policy)
    backtest = None if backtest_path is None else BacktestSpec(
        backtest_path, candidate, candidate_env, batch_size, control=control, control_env=control_env)
    with _progress(backtest_path) as on_batch:
        live = LiveSpec(redis.client, str(redis), experiment, partitions)
        loaded = load_report(report_path, backtest, live, on_batch)
    if loaded.backtest is not None:
        _echo_backtest(loaded.backtest)
    result = judge_loaded(loaded, loaded_policy)
    if junit_path is not None:
        junit_path.write_text(to_junit(result), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.write_text(to_markdown(result), encoding="utf-8")
    if as_json:
        click.echo(to_json_text(result))
    else:
        for line in terminal_lines(result):
            click.secho(line, fg="red" if "FAIL" in line else None, err=result.problem is not None)
    notify_gate(to_json(result), policy)  # best effort, bounded by HARNESS_WEBHOOK_TIMEOUT: never the exit code
    click.get_current_context().exit(result.exit_code)


def _echo_backtest(result: BacktestResult, *, split: bool = True) -> None:
    alone = result.report["sides"]["control"] is None
    sides = (f"; control {result.legacy_seconds:.1f} s, candidate {result.candidate_seconds:.1f} s"
             if split and not alone else "")
    workers = "the candidate alone" if alone else "both workers"
    click.echo(f"backtest: {result.signals:,} signals through {workers} in {result.seconds:.1f} s "
               f"({result.signals_per_s:,.0f} signals/s{sides})", err=True)


@contextmanager
def _progress(path: Path | None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for a backtest of a long (or unknown-length) file."""
    from harness.report.source import signal_count_hint

    total = None if path is None else signal_count_hint(path)
    if path is None or (total is not None and total < PROGRESS_MIN_SIGNALS):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("backtest", total=total)
        yield lambda done: progress.update(task, completed=done)


@click.command("backtest")
@options.option("--signals", "signals_path", envvar="HARNESS_BACKTEST_SIGNALS", required=True, type=path_type,
                help="Recorded signals (.parquet, .csv, .jsonl), e.g. from `harness record`.")
@candidate_spec
@candidate_env
@control_spec
@control_env
@options.option("--alone", envvar="HARNESS_BACKTEST_ALONE", is_flag=True, default=False,
                help="No control: score the candidate alone against the true kinds (as --control none).")
@batch_size
@options.option("--report-json", "report_json", envvar="HARNESS_BACKTEST_REPORT_JSON", default=None,
                type=options.output_file, help="Write the harness.report/1 JSON here (for `harness gate --report`).")
@options.option("--pairs", "pairs_path", envvar="HARNESS_BACKTEST_PAIRS", default=None, type=options.table_output,
                help="Write every signal's labels on each side and its true kind here (.parquet or .csv).")
def backtest_command(signals_path: Path, candidate: str, candidate_env: dict[str, str], control: str,
                     control_env: dict[str, str], alone: bool, batch_size: int, report_json: Path | None,
                     pairs_path: Path | None) -> None:
    """Run a control (legacy by default) and a candidate in-process on a signal file (no Redis) and print the
    comparison; the control is reported as the 'legacy' side. With --alone, score the candidate alone."""
    from rich.console import Console

    from harness.backtest import NO_CONTROL
    from harness.report.render import render_terminal
    from harness.report.source import BacktestSpec, run_backtest

    if alone and control not in ("legacy", NO_CONTROL):
        raise click.UsageError(f"give --alone or --control {control}, not both")
    spec = BacktestSpec(signals_path, candidate, candidate_env, batch_size, control=NO_CONTROL if alone else control,
                        control_env=control_env, pairs=pairs_path)
    with _progress(signals_path) as on_batch:
        result = run_backtest(spec, on_batch)
    if report_json is not None:
        report_json.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    render_terminal(result.report, Console(width=110))
    _echo_backtest(result, split=False)


@click.command("threshold")
@options.option("--cases", "cases_path", envvar="HARNESS_THRESHOLD_CASES", required=True, type=path_type,
                help="TOML cases file (see tests/threshold/cases.toml).")
@options.option("--worker", envvar="HARNESS_THRESHOLD_WORKER", default="candidate",
                help="Worker to check: 'legacy', 'candidate' or MODULE:FACTORY; run in-process, fresh state.")
@options.option("--worker-env", "worker_env", envvar="HARNESS_THRESHOLD_ENV", multiple=True, metavar="KEY=VALUE",
                callback=options.env_over_process, help="Environment of the worker, over this process's (repeatable).")
def threshold_command(cases_path: Path, worker: str, worker_env: dict[str, str]) -> None:
    """Check the business threshold cases: groups that must share a cluster, pairs that must not.

    Exit 0 when every case holds, 1 otherwise.
    """
    from harness.threshold import load_cases, run_cases

    outcomes = run_cases(load_cases(cases_path), worker, worker_env)
    for outcome in outcomes:
        click.secho(outcome.line(), fg=None if outcome.passed else "red")
    failed = sum(not outcome.passed for outcome in outcomes)
    click.echo(f"{len(outcomes) - failed} of {len(outcomes)} threshold cases hold for {worker}")
    click.get_current_context().exit(1 if failed else 0)


COMMANDS: list[click.Command] = [gate_command, threshold_command, backtest_command]
