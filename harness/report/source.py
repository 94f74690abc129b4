"""Where a report comes from: a saved file, the live comparison in Redis, or a backtest.

Each source gives a report or one line saying why there is none, so a gate can fail closed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from harness.backtest import BacktestResult

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class LoadedReport:
    source: str  # what was judged, e.g. "report r.json", for the verdict
    report: dict[str, Any] | None
    problem: str | None = None  # why there is no report: missing, corrupt, unreachable, failed
    candidate: str | None = None  # the candidate a backtest ran, for the policy's threshold cases
    candidate_env: Mapping[str, str] | None = None
    backtest: BacktestResult | None = None


@dataclass(frozen=True)
class BacktestSpec:
    signals: Path
    candidate: str = "candidate"
    candidate_env: Mapping[str, str] = field(default_factory=dict)  # the candidate's whole environment
    batch_size: int = 500
    control: str = "legacy"  # any worker spec, reported as the legacy side; "none": the candidate alone
    control_env: Mapping[str, str] | None = None  # the control's whole environment; None: this process's
    pairs: Path | None = None  # write every signal's labels here (.csv or .parquet)


@dataclass(frozen=True)
class LiveSpec:
    connect: Callable[[], redis.Redis]  # builds the client; only called when the live source is chosen
    where: str  # the Redis as shown to a user, password hidden
    experiment: str | None = None  # None: the current experiment, else the latest
    partitions: int | None = None  # the comparator shards' partitions; None: HARNESS_PARTITIONS, else 1


def load_report(saved: Path | None, backtest: BacktestSpec | None, live: LiveSpec,
                on_batch: ProgressCallback | None = None) -> LoadedReport:
    """A saved report if given, else a backtest if given, else the live comparison in Redis."""
    if saved is not None:
        return saved_report(saved)
    if backtest is not None:
        return backtest_report(backtest, on_batch)
    with closing(live.connect()) as client:
        return live_report(client, live.where, live.experiment, live.partitions)


def saved_report(path: Path) -> LoadedReport:
    from harness.report.schema import ReportError, report_from_json

    source = f"report {path}"
    try:
        return LoadedReport(source, report_from_json(path.read_bytes()))
    except FileNotFoundError:
        return LoadedReport(source, None, f"report {path} does not exist")
    except OSError as exc:
        return LoadedReport(source, None, f"report {path} is not readable: {exc.strerror or exc}")
    except ReportError as exc:
        return LoadedReport(source, None, f"report {path} is corrupt: {exc}")


def live_report(client: redis.Redis, where: str, experiment: str | None = None,
                partitions: int | None = None) -> LoadedReport:
    """An experiment's comparison kept in Redis by the comparator (default: the current experiment, else the
    latest), dated by its last checkpoint (so a dead comparator's is stale); a finished one's final report."""
    import redis as redis_py

    from harness.comparator.service import live_report as read_live_report
    from harness.experiments import ExperimentError, resolve
    from harness.report.headline import headline

    source = f"live comparison in {where}"
    try:
        try:
            chosen = resolve(client, experiment)
            named = "" if chosen.implicit else f" of experiment {chosen.name}"
            if not chosen.implicit:
                source = f"experiment {chosen.name} ({chosen.control} vs {chosen.candidate}) in {where}"
            report = read_live_report(client, chosen.name, configured_partitions(partitions))
        except ExperimentError as exc:
            return LoadedReport(source, None, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return LoadedReport(source, None, f"the comparison in Redis at {where} is unreadable: {exc}")
        if report is None:
            return LoadedReport(source, None, f"no comparison{named} in Redis at {where}: run `harness comparator` "
                                              f"first")
        # The production and lag figures are added after the state built its report: lead with them too.
        report["headline"] = headline(report)
        return LoadedReport(source, report)
    except redis_py.RedisError as exc:
        return LoadedReport(source, None, f"cannot read the comparison from Redis at {where}: {exc}")


def configured_partitions(partitions: int | None) -> int:
    """P as given, else as the deployment sets it (HARNESS_PARTITIONS: every process shares it), else 1."""
    from harness.partitions import check_partition_count

    if partitions is not None:
        return partitions
    raw = os.environ.get("HARNESS_PARTITIONS", "").strip()
    try:
        return check_partition_count(int(raw)) if raw else 1
    except ValueError:
        return 1  # the commands that take --partitions report a bad value; a report falls back to one


def backtest_report(spec: BacktestSpec, on_batch: ProgressCallback | None = None) -> LoadedReport:
    """Legacy and the candidate in-process on a signal file; a failure is a problem, never a traceback."""
    source = f"backtest of {spec.signals} (control {spec.control}, candidate {spec.candidate})"
    try:
        result = run_backtest(spec, on_batch)
    except (OSError, ValueError) as exc:  # unreadable file, bad worker spec or candidate configuration
        problem = f"backtest of {spec.signals} failed: {' '.join(str(exc).split()) or type(exc).__name__}"
        return LoadedReport(source, None, problem, spec.candidate, spec.candidate_env)
    return LoadedReport(source, result.report, None, spec.candidate, spec.candidate_env, result)


def run_backtest(spec: BacktestSpec, on_batch: ProgressCallback | None = None) -> BacktestResult:
    from harness.backtest import run_backtest as run
    from harness.producer.files import read_signals

    if not spec.signals.is_file():
        raise FileNotFoundError(f"signal file {spec.signals} does not exist")
    control_env = dict(os.environ) if spec.control_env is None else spec.control_env
    return run(read_signals(spec.signals), control=spec.control, candidate=spec.candidate, control_env=control_env,
               candidate_env=spec.candidate_env, batch_size=spec.batch_size, on_batch=on_batch, pairs=spec.pairs)


def signal_count_hint(path: Path) -> int | None:
    """How many signals a file holds, when that is cheap to know (Parquet metadata, JSONL lines)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.suffix.lower() == ".jsonl":
            with path.open("rb") as file:
                return sum(1 for line in file if line.strip())
    except Exception:  # only a hint: the backtest itself reports an unreadable file, in one line
        return None
    return None
