"""`harness gate`, `harness threshold`, `harness backtest` and `harness record`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import redis

from harness.cli import options

PROGRESS_MIN_SIGNALS = 10_000  # files at least this long (or of unknown length) get a progress bar

candidate_spec = options.option(
    "--candidate", "candidate", envvar="HARNESS_BACKTEST_CANDIDATE", default="candidate",
    help="Candidate for a backtest: 'candidate', 'legacy' or MODULE:FACTORY.",
)
candidate_env = options.option(
    "--candidate-env", "candidate_env", envvar="HARNESS_BACKTEST_CANDIDATE_ENV", multiple=True,
    metavar="KEY=VALUE", help="Environment of the backtest candidate, over this process's (repeatable), "
    "e.g. HARNESS_CANDIDATE_CENTROID=mean.",
)
batch_size = options.option(
    "--batch-size", envvar="HARNESS_BACKTEST_BATCH_SIZE", default=500, type=click.IntRange(1),
    help="Signals per batch in a backtest, as the worker runtime reads them.",
)
path_type = click.Path(dir_okay=False, path_type=Path)


@click.command("gate")
@options.option("--policy", envvar="HARNESS_GATE_POLICY", default=None, type=path_type,
                help="TOML policy file (see policies/default.toml and docs/gate.md). Required.")
@options.redis_url
@options.option("--report", "report_path", envvar="HARNESS_GATE_REPORT", default=None, type=path_type,
                help="Judge a saved harness.report/1 JSON file instead of the live comparison in Redis.")
@options.option("--backtest", "backtest_path", envvar="HARNESS_GATE_BACKTEST", default=None, type=path_type,
                help="Judge a backtest of this signal file (.parquet, .csv, .jsonl): legacy vs candidate "
                     "in-process.")
@candidate_spec
@candidate_env
@batch_size
@options.option("--junit", "junit_path", envvar="HARNESS_GATE_JUNIT", default=None, type=path_type,
                help="Also write JUnit XML: one testcase per rule.")
@options.option("--markdown", "markdown_path", envvar="HARNESS_GATE_MARKDOWN", default=None, type=path_type,
                help="Also write the verdict as Markdown (for a CI comment).")
@options.option("--json", "as_json", envvar="HARNESS_GATE_JSON", is_flag=True, default=False,
                help="Print the verdict as JSON (harness.gate/1) instead of text.")
def gate_command(
    policy: Path | None, redis_url: str, report_path: Path | None, backtest_path: Path | None, candidate: str,
    candidate_env: tuple[str, ...], batch_size: int, junit_path: Path | None, markdown_path: Path | None,
    as_json: bool,
) -> None:
    """Judge legacy vs candidate against a policy: the live comparison in Redis (default), a saved
    report, or a backtest.

    Exit codes: 0 pass; 1 fail, or data missing, stale, corrupt or errored (never a pass);
    2 inconclusive (too few matched pairs).
    """
    from harness.gate import judge, load_policy, unusable
    from harness.gate.verdict import terminal_lines, to_json_text, to_junit, to_markdown

    # exit 1, not click's usage exit 2: a gate that cannot run must never look inconclusive
    if policy is None:
        raise click.ClickException("give --policy FILE (or HARNESS_GATE_POLICY): the gate needs a policy")
    if report_path is not None and backtest_path is not None:
        raise click.ClickException("give --report FILE or --backtest FILE, not both")
    loaded = load_policy(policy)
    threshold_candidate: str | None = None
    threshold_env: dict[str, str] | None = None
    if report_path is not None:
        source = f"report {report_path}"
        report, problem = _saved_report(report_path)
    elif backtest_path is not None:
        source = f"backtest of {backtest_path} (candidate {candidate})"
        threshold_candidate, threshold_env = candidate, _environment(candidate_env)
        report, problem = _backtest_report(backtest_path, candidate, threshold_env, batch_size)
    else:
        source = f"live comparison in {_redacted(redis_url)}"
        report, problem = _live_report(redis_url)
    if report is None:
        result = unusable(problem or "no report", confidence=loaded.confidence, source=source,
                          policy=loaded.source)
    else:
        result = judge(report, loaded, candidate=threshold_candidate, candidate_env=threshold_env, source=source)
    if junit_path is not None:
        junit_path.write_text(to_junit(result), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.write_text(to_markdown(result), encoding="utf-8")
    if as_json:
        click.echo(to_json_text(result))
    else:
        for line in terminal_lines(result):
            click.secho(line, fg="red" if "FAIL" in line else None, err=result.problem is not None)
    click.get_current_context().exit(result.exit_code)


def _saved_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    from harness.report.schema import ReportError, report_from_json

    try:
        return report_from_json(path.read_bytes()), None
    except FileNotFoundError:
        return None, f"report {path} does not exist"
    except OSError as exc:
        return None, f"report {path} is not readable: {exc.strerror or exc}"
    except ReportError as exc:
        return None, f"report {path} is corrupt: {exc}"


def _live_report(redis_url: str) -> tuple[dict[str, Any] | None, str | None]:
    client = redis.Redis.from_url(redis_url)
    try:
        return live_report(client, _redacted(redis_url))
    finally:
        client.close()


def live_report(client: redis.Redis, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """(report, None) from the comparison kept in Redis, or (None, why not) in one line.

    The report is dated by the comparator's last checkpoint, so a comparator that died shows as stale.
    """
    from harness.comparator.service import live_report as read_live_report

    try:
        try:
            report = read_live_report(client)
        except (ValueError, KeyError, TypeError) as exc:
            return None, f"the comparison in Redis at {where} is unreadable: {exc}"
        if report is None:
            return None, f"no comparison in Redis at {where}: run `harness comparator` first"
        return report, None
    except redis.RedisError as exc:
        return None, f"cannot read the comparison from Redis at {where}: {exc}"


def _backtest_report(path: Path, candidate: str, env: dict[str, str], size: int
                     ) -> tuple[dict[str, Any] | None, str | None]:
    try:
        result = _run_backtest(path, candidate, env, size)
    except (OSError, ValueError) as exc:  # unreadable file, bad worker spec or candidate configuration
        return None, f"backtest of {path} failed: {' '.join(str(exc).split()) or type(exc).__name__}"
    return result.report, None


def _run_backtest(path: Path, candidate: str, env: dict[str, str], size: int) -> Any:
    from harness.backtest import run_backtest
    from harness.producer.files import read_signals

    if not path.is_file():
        raise FileNotFoundError(f"signal file {path} does not exist")
    with _progress(path) as on_batch:
        result = run_backtest(read_signals(path), candidate=candidate, legacy_env=dict(os.environ),
                              candidate_env=env, batch_size=size, on_batch=on_batch)
    click.echo(f"backtest: {result.signals:,} signals through both workers in {result.seconds:.1f} s "
               f"({result.signals_per_s:,.0f} signals/s; legacy {result.legacy_seconds:.1f} s, candidate "
               f"{result.candidate_seconds:.1f} s)", err=True)
    return result


@contextmanager
def _progress(path: Path) -> Iterator[Callable[[int], None] | None]:
    total = _signal_count_hint(path)
    if total is not None and total < PROGRESS_MIN_SIGNALS:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("backtest", total=total)
        yield lambda done: progress.update(task, completed=done)


def _signal_count_hint(path: Path) -> int | None:
    """How many signals a file holds, when that is cheap to know (Parquet metadata, JSONL lines)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.suffix.lower() == ".jsonl":
            with path.open("rb") as file:
                return sum(1 for line in file if line.strip())
    except Exception:  # the backtest itself reports an unreadable file, in one line
        return None
    return None


def _environment(pairs: tuple[str, ...]) -> dict[str, str]:
    from harness.envpairs import parse_env_pairs

    return {**os.environ, **parse_env_pairs(pairs)}


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@click.command("backtest")
@options.option("--signals", "signals_path", envvar="HARNESS_BACKTEST_SIGNALS", required=True, type=path_type,
                help="Recorded signals (.parquet, .csv, .jsonl), e.g. from `harness record`.")
@candidate_spec
@candidate_env
@options.option("--legacy", "legacy", envvar="HARNESS_BACKTEST_LEGACY", default="legacy",
                help="The incumbent: 'legacy' or MODULE:FACTORY.")
@batch_size
@options.option("--report-json", "report_json", envvar="HARNESS_BACKTEST_REPORT_JSON", default=None,
                type=path_type, help="Write the harness.report/1 JSON here (for `harness gate --report`).")
def backtest_command(signals_path: Path, candidate: str, candidate_env: tuple[str, ...], legacy: str,
                     batch_size: int, report_json: Path | None) -> None:
    """Run legacy and a candidate in-process on a signal file (no Redis) and print the comparison."""
    from harness.backtest import run_backtest
    from harness.producer.files import read_signals
    from harness.report.render import render_terminal

    if not signals_path.is_file():
        raise click.ClickException(f"signal file {signals_path} does not exist")
    with _progress(signals_path) as on_batch:
        result = run_backtest(read_signals(signals_path), legacy=legacy, candidate=candidate,
                              legacy_env=dict(os.environ), candidate_env=_environment(candidate_env),
                              batch_size=batch_size, on_batch=on_batch)
    if report_json is not None:
        report_json.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    from rich.console import Console

    render_terminal(result.report, Console(width=110))
    click.echo(f"backtest: {result.signals:,} signals through both workers in {result.seconds:.1f} s "
               f"({result.signals_per_s:,.0f} signals/s)", err=True)


@click.command("threshold")
@options.option("--cases", "cases_path", envvar="HARNESS_THRESHOLD_CASES", required=True, type=path_type,
                help="TOML cases file (see tests/threshold/cases.toml).")
@options.option("--worker", envvar="HARNESS_THRESHOLD_WORKER", default="candidate",
                help="Worker to check: 'legacy', 'candidate' or MODULE:FACTORY; run in-process, fresh state.")
@options.option("--worker-env", "worker_env", envvar="HARNESS_THRESHOLD_ENV", multiple=True, metavar="KEY=VALUE",
                help="Environment of the worker, over this process's (repeatable).")
def threshold_command(cases_path: Path, worker: str, worker_env: tuple[str, ...]) -> None:
    """Check the business threshold cases: groups that must share a cluster, pairs that must not.

    Exit 0 when every case holds, 1 otherwise.
    """
    from harness.threshold import load_cases, run_cases

    outcomes = run_cases(load_cases(cases_path), worker, _environment(worker_env))
    for outcome in outcomes:
        click.secho(outcome.line(), fg=None if outcome.passed else "red")
    failed = sum(not outcome.passed for outcome in outcomes)
    click.echo(f"{len(outcomes) - failed} of {len(outcomes)} threshold cases hold for {worker}")
    click.get_current_context().exit(1 if failed else 0)


@click.command("record")
@options.redis_url
@options.input_stream
@options.option("--out", "out_path", envvar="HARNESS_RECORD_OUT", required=True, type=path_type,
                help="Signal file to write (.parquet, .csv, .jsonl), for `harness backtest`.")
@options.option("--count", envvar="HARNESS_RECORD_COUNT", default=None, type=click.IntRange(1),
                help="Stop after this many signals.")
@options.option("--seconds", envvar="HARNESS_RECORD_SECONDS", default=None, type=click.FloatRange(0.001),
                help="Stop after this many seconds (with --count: whichever comes first).")
@options.option("--from-id", "from_id", envvar="HARNESS_RECORD_FROM", default="$",
                help="Stream id to read after: '$' for entries arriving from now on, '0' for the whole stream.")
def record_command(redis_url: str, input_stream: str, out_path: Path, count: int | None, seconds: float | None,
                   from_id: str) -> None:
    """Capture signals from the live input stream into a file, without a consumer group (production is
    not disturbed)."""
    from harness.recorder import record

    if count is None and seconds is None:
        raise click.UsageError("give --count N or --seconds S (or both)")
    result = record(redis.Redis.from_url(redis_url), input_stream, out_path, count=count, seconds=seconds,
                    start_id=from_id)
    skipped = f" ({result.skipped:,} undecodable entries skipped)" if result.skipped else ""
    click.echo(f"recorded {result.recorded:,} signals from {input_stream} to {out_path}{skipped}; "
               f"last entry {result.last_id}")


COMMANDS: list[click.Command] = [gate_command, threshold_command, backtest_command, record_command]
