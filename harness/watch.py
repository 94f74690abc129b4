"""`harness watch`: a snapshot of workers, agreement, latency and roles read from Redis, and its rich rendering.

Collecting talks to Redis; rendering is pure (a Snapshot in, a rich renderable out), so it is unit-tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.cutover.status import rollback_window
from harness.cutover.stoppers import heartbeat
from harness.partitions import Partition, all_partitions
from harness.report.source import live_report
from harness.transport import keys
from harness.transport.replies import text
from harness.transport.roles import Roles, group_lag, read_roles

SCOPES = ("overall", "window", "anomalies")  # the agreement scopes of a harness.report/1 report
DASH = "—"  # a figure that is unknown (no comparison yet, no heartbeat), never shown as 0


@dataclass(frozen=True)
class WorkerRow:
    name: str
    side: str | None  # legacy, candidate or replica in the comparison; None for any other consumer group
    state: str  # the heartbeat's state, or "no heartbeat"
    rate: float | None  # results per second since the previous snapshot; None on the first
    lag_entries: int | None
    lag_s: float | None
    heartbeat_age_s: float | None
    dead_letters: int
    errors: int | None  # results with outcome "error", from the comparison (None: not compared)
    stalled: bool = False


@dataclass(frozen=True)
class Agreement:
    scope: str
    pairs: int | None
    ari: float | None
    nmi: float | None
    matched_accuracy: float | None


@dataclass(frozen=True)
class Latency:
    side: str
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Snapshot:
    where: str  # the Redis, password hidden
    experiment: str
    workers: tuple[WorkerRow, ...] = ()
    agreement: tuple[Agreement, ...] = ()
    latency: tuple[Latency, ...] = ()
    headline: str | None = None
    problem: str | None = None  # why there is no comparison (or no Redis) right now
    roles: Roles | None = None
    rollback: str = "none"
    comparison_age_s: float | None = None
    taken_at: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))


# --- reading the report (pure) ---------------------------------------------------------------------


def agreement_rows(report: Mapping[str, Any]) -> tuple[Agreement, ...]:
    section = report.get("agreement") or {}
    scoped = {"overall": section, "window": section.get("window") or {}, "anomalies": section.get("anomalies") or {}}
    return tuple(Agreement(scope, _int(part.get("pairs")), _float(part.get("ari")), _float(part.get("nmi")),
                           _float(part.get("matched_accuracy"))) for scope, part in scoped.items())


def latency_rows(report: Mapping[str, Any], sides: Sequence[str] = ("legacy", "candidate")) -> tuple[Latency, ...]:
    section = report.get("latency_ms") or {}
    return tuple(Latency(side, _float((section.get(side) or {}).get("p50")),
                         _float((section.get(side) or {}).get("p99"))) for side in sides)


def side_figures(report: Mapping[str, Any] | None, side: str | None) -> dict[str, Any]:
    """The comparison's figures for one side: its progress (lag_s, stalled) and its error count."""
    if report is None or side is None:
        return {}
    figures = dict(((report.get("progress") or {}).get("sides") or {}).get(side) or {})
    figures["errors"] = ((report.get("errors") or {}).get(side) or {}).get("error")
    return figures


def compared_workers(report: Mapping[str, Any] | None, fallback: Mapping[str, str]) -> dict[str, str]:
    """Side -> worker: the report's experiment names its control (the legacy side) and candidate."""
    named = (report or {}).get("sides") or {}
    workers = dict(fallback)
    if named.get("control"):
        workers["legacy"] = named["control"]
    if named.get("candidate"):
        workers["candidate"] = named["candidate"]
    return workers


def experiment_label(report: Mapping[str, Any] | None) -> str | None:
    experiment = (report or {}).get("experiment") or {}
    name = experiment.get("name")
    if not name:
        return None
    return f"{name} (ended)" if experiment.get("ended_ms") else str(name)


def unix_seconds(iso_stamp: str | None) -> float | None:
    """A report's ISO 8601 stamp (`generated_at`) as Unix time; None when absent or unreadable."""
    if not iso_stamp:
        return None
    try:
        return datetime.fromisoformat(iso_stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age_s(iso_stamp: str | None, now_s: float) -> float | None:
    stamp = unix_seconds(iso_stamp)
    return None if stamp is None else max(now_s - stamp, 0.0)


class RateMeter:
    """Results per second of each worker from the growth of a cumulative count between two readings."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, tuple[int, float]] = {}

    def rates(self, counts: Mapping[str, int]) -> dict[str, float | None]:
        now = self._clock()
        rates: dict[str, float | None] = {}
        for name, count in counts.items():
            before = self._last.get(name)
            # A count that went down was reset (stream deleted and rebuilt): no rate until the next reading.
            if before is None or count < before[0] or now <= before[1]:
                rates[name] = None
            else:
                rates[name] = (count - before[0]) / (now - before[1])
            self._last[name] = (count, now)
        return rates


# --- collecting from Redis -------------------------------------------------------------------------


class Collector:
    """Builds a Snapshot each call; keeps the previous results counts to turn them into rates.

    `workers` (side -> worker) names the compared workers until a report names them (an experiment's sides).
    """

    def __init__(self, client: redis.Redis, where: str, workers: Mapping[str, str], *,
                 experiment: str | None = None, input_stream: str = keys.DEFAULT_INPUT_STREAM,
                 partitions: int = 1, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._where = where
        self._workers = dict(workers)
        self._experiment = experiment  # None: the current experiment
        self._input_stream = input_stream
        self._partitions = partitions
        # A worker's streams and keys in every partition: its rows add them up (docs/partitions.md).
        self._scopes: list[Partition | None] = [*all_partitions(partitions)] if partitions > 1 else [None]
        self._clock = clock
        self._rates = RateMeter()

    def _each(self, key: str) -> list[str]:
        return [keys.scoped(key, scope) for scope in self._scopes]

    def collect(self) -> Snapshot:
        try:
            return self._collect()
        except redis.RedisError as exc:
            # The dashboard stays up through a Redis restart and says why it shows nothing.
            problem = f"cannot read Redis at {self._where}: {' '.join(str(exc).split()) or type(exc).__name__}"
            return Snapshot(self._where, DASH, problem=problem)

    def _collect(self) -> Snapshot:
        loaded = live_report(self._client, self._where, self._experiment, self._partitions)
        report = loaded.report
        now_s = self._clock()
        sides = {worker: side for side, worker in compared_workers(report, self._workers).items()}
        names = self._worker_names(sides)
        rates = self._rates.rates({name: self._results_added(name) for name in names})
        workers = tuple(self._worker_row(name, sides.get(name), rates[name], report, now_s) for name in names)
        return Snapshot(
            self._where, experiment_label(report) or self._experiment or current_experiment(self._client), workers,
            agreement_rows(report) if report else (), latency_rows(report) if report else (),
            headline=report.get("headline") if report else None, problem=loaded.problem,
            roles=read_roles(self._client), rollback=rollback_window(self._client)["line"],
            comparison_age_s=age_s(report.get("generated_at"), now_s) if report else None)

    def _worker_names(self, sides: Mapping[str, str]) -> list[str]:
        """The compared workers first (in side order), then any other consumer group of the input."""
        try:  # every partition's input has the same groups
            groups = [text(info["name"]) for info in self._client.xinfo_groups(self._each(self._input_stream)[0])]
        except redis.ResponseError:  # no input stream yet
            groups = []
        return list(sides) + [name for name in groups if name not in sides]

    def _results_added(self, worker: str) -> int:
        added = 0
        for stream in self._each(keys.results_stream(worker)):
            try:
                info = self._client.xinfo_stream(stream)
            except redis.ResponseError:  # no results yet
                continue
            # Redis 7 counts every entry ever added, so a trimmed stream still gives a true rate.
            added += int(info.get("entries-added") or info.get("length") or 0)
        return added

    def _latest_heartbeat(self, worker: str) -> dict[str, str]:
        """The worker's heartbeat; with partitions, the most recent of its partitions' (one per runtime)."""
        beats = [heartbeat(self._client, worker, scope) for scope in self._scopes]
        return max(beats, key=lambda beat: int(beat.get("last_seen_ms") or 0))

    def _lag(self, worker: str) -> int | None:
        lags = [lag for stream in self._each(self._input_stream)
                if (lag := group_lag(self._client, stream, worker)) is not None]
        return sum(lags) if lags else None

    def _dead_letters(self, worker: str) -> int:
        kept = sum(int(self._client.xlen(stream)) for stream in self._each(keys.dead_letter_stream(worker)))
        return kept + sum(int(self._client.get(key) or 0) for key in self._each(keys.dead_letters_dropped_key(worker)))

    def _worker_row(self, name: str, side: str | None, rate: float | None, report: Mapping[str, Any] | None,
                    now_s: float) -> WorkerRow:
        beat = self._latest_heartbeat(name)
        seen_ms = beat.get("last_seen_ms")
        figures = side_figures(report, side)
        return WorkerRow(
            name, side, beat.get("state", "no heartbeat"), rate,
            lag_entries=self._lag(name), lag_s=_float(figures.get("lag_s")),
            heartbeat_age_s=max(now_s - int(seen_ms) / 1000.0, 0.0) if seen_ms else None,
            dead_letters=self._dead_letters(name), errors=_int(figures.get("errors")),
            stalled=bool(figures.get("stalled")))


def current_experiment(client: redis.Redis) -> str:
    """The current experiment's name when no report names it yet; "none" once the last one ended."""
    from harness.experiments import current

    found = current(client)
    return found.name if found is not None else "none"


# --- rendering (pure) ------------------------------------------------------------------------------


def render(snapshot: Snapshot) -> RenderableType:
    parts: list[RenderableType] = [_header(snapshot), _headline(snapshot), workers_table(snapshot)]
    if snapshot.agreement or snapshot.latency:
        # Side by side, so the whole view fits a 24-line terminal.
        comparison = Table.grid(padding=(0, 2))
        comparison.add_row(agreement_table(snapshot.agreement), latency_table(snapshot.latency))
        parts += [Text(""), comparison]
    parts.append(Text("Ctrl-C to quit", style="dim"))
    return Group(*parts)


def _header(snapshot: Snapshot) -> Text:
    roles = snapshot.roles
    primary = (roles.primary or "none") if roles else DASH
    epoch = str(roles.epoch) if roles else DASH
    saved = DASH if snapshot.comparison_age_s is None else f"{snapshot.comparison_age_s:.1f}s ago"
    return Text.assemble(
        ("harness watch", "bold"), f"  {snapshot.where}  {snapshot.taken_at}  comparison saved {saved}\n",
        "experiment ", (snapshot.experiment, "bold"), "  primary ", (primary, "bold"), f"  epoch {epoch}\n",
        f"rollback {snapshot.rollback}")


def _headline(snapshot: Snapshot) -> Panel:
    if snapshot.problem is not None:
        return Panel(Text(snapshot.problem, style="yellow"), title="no comparison", title_align="left")
    return Panel(Text(snapshot.headline or DASH), title="headline", title_align="left")


def workers_table(snapshot: Snapshot) -> Table:
    table = _table("worker", "state", "rate/s", "lag", "heartbeat", "dead letters", "errors", title="workers")
    primary = snapshot.roles.primary if snapshot.roles else None
    for row in snapshot.workers:
        # A second line in the cell, not a wider column: the table must fit 80 columns.
        name = Text(row.name + ("" if row.side in (None, row.name) else f"\n({row.side})"),
                    style="bold" if row.name == primary else "")
        state = Text(row.state + ("\nstalled" if row.stalled else ""),
                     style="red" if row.stalled or row.state in ("no heartbeat", "backing-off") else "")
        lag = _number(row.lag_entries, ",") + ("" if row.lag_s is None else f" ({row.lag_s:.1f}s)")
        table.add_row(name, state, _number(row.rate, ".1f"), lag,
                      _seconds_ago(row.heartbeat_age_s), f"{row.dead_letters:,}", _number(row.errors, ","))
    return table


def agreement_table(rows: Sequence[Agreement]) -> Table:
    table = _table("scope", "pairs", "ARI", "NMI", "accuracy", title="agreement")
    for row in rows:
        table.add_row(row.scope, _number(row.pairs, ","), _number(row.ari, ".3f"), _number(row.nmi, ".3f"),
                      _number(row.matched_accuracy, ".1%"))
    return table


def latency_table(rows: Sequence[Latency]) -> Table:
    table = _table("side", "p50 ms", "p99 ms", title="latency")
    for row in rows:
        table.add_row(row.side, _number(row.p50_ms, ".1f"), _number(row.p99_ms, ".1f"))
    return table


def _table(*columns: str, title: str) -> Table:
    return Table(*columns, title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                 show_edge=False, collapse_padding=True)


def _number(value: float | int | None, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def _seconds_ago(value: float | None) -> str:
    """Compact, so a worker silent for days still fits its column: 0.8s, 12m, 5h, 3d."""
    if value is None:
        return DASH
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if value >= 2 * size:
            return f"{value / size:.0f}{unit}"
    return f"{value:.1f}s"


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

