"""What one experiment's comparison covers: the results from its start entry on (StartFilter), and its report
(live from its last checkpoint, or the one it ended with)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack
import redis

from harness.comparator.join import NO_POSITION, input_position
from harness.comparator.state import ComparatorState
from harness.contracts import RESULT_KEYS
from harness.experiments import Experiment, final_report
from harness.partitions import Partition, all_partitions
from harness.report.headline import headline
from harness.transport import keys
from harness.transport.replies import text
from harness.transport.roles import production_summary

if TYPE_CHECKING:
    import pandas as pd

_ENTRY_AT = RESULT_KEYS.index("entry")
_UNBOUNDED = 1 << 100  # past every input position


def produced_count(client: redis.Redis, partitions: int = 1) -> int | None:
    """Signals `harness produce` sent, over every partition; None when nothing was produced."""
    return _summed(client, keys.PRODUCED_KEY, partitions)


def produced_in(client: redis.Redis, partition: Partition | None) -> int | None:
    """Signals produced to one partition (None: the unpartitioned input)."""
    value = client.get(keys.scoped(keys.PRODUCED_KEY, partition))
    return int(value) if value is not None else None


def produced_lost(client: redis.Redis, partitions: int = 1) -> int | None:
    """Signals the store acknowledged to a producer and then lost at a failover, over every partition."""
    return _summed(client, keys.PRODUCED_LOST_KEY, partitions)


def _summed(client: redis.Redis, key: str, partitions: int) -> int | None:
    # one GET per partition: on a cluster the partitions' keys live in different slots
    values = [client.get(keys.scoped(key, partition)) for partition in all_partitions(partitions)]
    known = [int(value) for value in values if value is not None]
    return sum(known) if known else None


class StartFilter:
    """Drops the results of input entries at or before the experiment's start: a worker's results from before
    the experiment (a retired worker's, a restored one's backlog) never count as pairs or as missing."""

    def __init__(self, start_entry: str) -> None:
        self._start = input_position(start_entry)
        self._passed: set[str] = set()  # streams whose results have passed the start: in input order, for good

    def reset(self) -> None:
        self._passed.clear()

    def filters(self, stream: str) -> bool:
        """Whether `keep` may drop some of the next results of `stream`."""
        return self._start > 0 and stream not in self._passed

    def keep(self, stream: str, records: list[Any]) -> list[Any]:
        if self._start <= 0 or stream in self._passed or not records:
            return records
        if _position(records[0]) > self._start:  # a worker commits in input order: the rest follow it
            self._passed.add(stream)
            return records
        kept = [record for record in records if (at := _position(record)) == NO_POSITION or at > self._start]
        if kept and _position(kept[-1]) > self._start:
            self._passed.add(stream)
        return kept


def _position(record: Any) -> int:
    """A decoded result's input entry as a position; NO_POSITION when it has none (rejected later, not here)."""
    if isinstance(record, list) and len(record) == len(RESULT_KEYS):
        return input_position(record[_ENTRY_AT])
    if isinstance(record, dict):
        return input_position(record.get("entry"))
    return NO_POSITION


def experiment_report(client: redis.Redis, experiment: Experiment, partitions: int = 1) -> dict[str, Any] | None:
    """The harness.report/1 report of an experiment (None when nothing was compared yet); one that ended
    reports what it ended with. With partitions, every partition's checkpoint merged (comparator shards).
    Raises ValueError when a saved state is unreadable."""
    if not experiment.running:
        kept = final_report(client, experiment)
        if kept is not None:
            return kept
    parts = all_partitions(partitions)
    state = merged_state(client, experiment, partitions)
    if state is None:
        return None
    summaries = [keys.scoped(experiment.summary_key, part) for part in parts]
    implicit = experiment.name == keys.DEFAULT_EXPERIMENT
    report = state.report(
        produced_count(client, partitions) if implicit else None, generated_at=_updated_at(client, summaries))
    lost = produced_lost(client, partitions) if implicit else None
    if lost is not None or (implicit and partitions > 1):
        report["counts"]["produced_lost"] = lost or 0
    report["cutover"] = production_summary(client, experiment.input_stream, partitions)
    if "progress" in report:
        for side, figures in _lag(client, summaries).items():
            report["progress"]["sides"].setdefault(side, {}).update(figures)
    report["experiment"] = experiment.describe()
    report["sides"] = {"control": experiment.control, "candidate": experiment.candidate}
    report["headline"] = headline(report)  # again: production and lag figures came in after it was made
    return report


def merged_state(client: redis.Redis, experiment: Experiment, partitions: int = 1) -> ComparatorState | None:
    """The experiment's comparison: every partition's checkpoint merged; None when none was written yet."""
    saved = [state for state in (client.get(keys.scoped(experiment.state_key, part))
                                 for part in all_partitions(partitions)) if state]
    if len(saved) == 1:
        return ComparatorState.from_bytes(saved[0])
    return ComparatorState.merged([ComparatorState.from_bytes(state) for state in saved]) if saved else None


def _lag(client: redis.Redis, summary_keys: list[str]) -> dict[str, dict[str, Any]]:
    """Each side's lag over the partitions: entries add up, the seconds and the stall are the worst one's."""
    merged: dict[str, dict[str, Any]] = {}
    for key in summary_keys:
        lag = client.hget(key, "lag")
        for side, figures in (json.loads(lag) if lag is not None else {}).items():
            if side not in merged:
                merged[side] = dict(figures)
                continue
            into = merged[side]
            if figures.get("lag_entries") is not None:
                into["lag_entries"] = (into.get("lag_entries") or 0) + figures["lag_entries"]
            for name in ("lag_s", "stalled_for_s"):
                into[name] = max((v for v in (into.get(name), figures.get(name)) if v is not None), default=None)
            into["stalled"] = bool(into.get("stalled")) or bool(figures.get("stalled"))
    return merged


def _updated_at(client: redis.Redis, summary_keys: list[str]) -> str | None:
    """The last checkpoint's time (the oldest partition's): a report is dated by it, so a comparator that
    died shows as stale."""
    stamps = [float(value) for value in (client.hget(key, "updated_ms") for key in summary_keys) if value is not None]
    if not stamps:
        return None
    stamp = datetime.fromtimestamp(min(stamps) / 1000.0, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def count_lines(experiment: Experiment, report: dict[str, Any] | None) -> list[str]:
    """`experiment show`: the experiment, its headline and its counts, one line each."""
    lines = [f"experiment {experiment.name}: {experiment.control} (control) vs {experiment.candidate} (candidate); "
             + (f"ended: {experiment.end_reason}" if not experiment.running else "running")]
    if report is None:
        return [*lines, "nothing compared yet (is `harness comparator` running?)"]
    counts = report["counts"]
    shown: Sequence[str] = ("matched", "missing_legacy", "missing_candidate", "pending", "duplicates", "late",
                            "rejected")
    return [*lines, report.get("headline") or "", ", ".join(
        f"{_side_name(key, experiment)} {counts.get(key, 0):,}" for key in shown)]


def _side_name(key: str, experiment: Experiment) -> str:
    # The report's slots are legacy (the control) and candidate: name the workers that filled them.
    if key.endswith("_legacy"):
        return f"{key.removesuffix('_legacy')} {experiment.control}"
    if key.endswith("_candidate"):
        return f"{key.removesuffix('_candidate')} {experiment.candidate}"
    return key


def counted_window(client: redis.Redis, experiment: Experiment, partition: Partition | None = None) -> tuple[int, int]:
    """(after, up to): the input positions of the signals both sides' results were counted for, at the last
    checkpoint: the export writes the pairs in it, so its rows are the report's matched pairs."""
    state_key = keys.scoped(experiment.state_key, partition)
    cursors = {text(k): text(v) for k, v in client.hgetall(keys.checkpoint_cursors_key(state_key)).items()}
    upto: list[int] = []
    for worker in (experiment.control, experiment.candidate):
        stream = keys.scoped(keys.results_stream(worker), partition)
        cursor = cursors.get(stream)
        last = client.xrange(stream, min=cursor, max=cursor, count=1) if cursor and cursor != "0" else []
        at = _position(_decoded(last[0][1])) if last else NO_POSITION
        # a hand-made result without an input entry cannot bound anything: all that side's results count
        upto.append(_UNBOUNDED if last and at == NO_POSITION else at)
    return input_position(experiment.start_entry), min(upto)


def within(pairs: pd.DataFrame, window: tuple[int, int]) -> pd.DataFrame:
    """The pairs whose input entry lies in the window (see counted_window); without a start, also those
    whose results carry no input entry (the comparator counts them by time)."""
    after, upto = window
    at = pairs["legacy_entry"].map(input_position)
    unplaced = (at == NO_POSITION) & (after <= 0) & (upto > NO_POSITION)
    return pairs[((at > after) & (at <= upto)) | unplaced]


def _decoded(fields: Mapping[bytes, bytes]) -> Any:
    try:
        return msgpack.unpackb(fields[keys.PAYLOAD_FIELD], raw=False)
    except Exception:  # a result that breaks the contract counts nowhere
        return None
