"""Business threshold cases: signals that must end in the same cluster, and pairs that must not.

A cases file (TOML) names a signal file and lists `[[together]]` groups and `[[apart]]` pairs by
signal id. The worker runs in-process with fresh in-memory state: the whole signal file is fed
once in file order as a warm-up, then once more, and the cases are checked on that second pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.backtest import InProcessWorker
from harness.clustering import Assignment
from harness.errors import HarnessError
from harness.tomlfile import read_toml

CaseKind = Literal["together", "apart"]


class ThresholdError(ValueError, HarnessError):
    """A cases file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Case:
    name: str
    kind: CaseKind
    signal_ids: tuple[str, ...]
    why: str = ""


@dataclass(frozen=True)
class CaseFile:
    path: Path
    signals: Path
    cases: tuple[Case, ...]
    warmup: bool = True


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.case.kind} {self.case.name}: {self.detail}"


def load_cases(path: str | Path) -> CaseFile:
    path = Path(path)
    data = read_toml(path, "threshold cases file", ThresholdError)
    unknown = sorted(set(data) - {"signals", "warmup", "together", "apart"})
    if unknown:
        raise ThresholdError(f"{path}: unknown key {unknown[0]!r} (known: signals, warmup, together, apart)")
    signals, warmup = data.get("signals"), data.get("warmup", True)
    if not isinstance(signals, str) or not (path.parent / signals).is_file():
        raise ThresholdError(f"{path}: 'signals' must name an existing signal file next to it, got {signals!r}")
    if not isinstance(warmup, bool):
        raise ThresholdError(f"{path}: 'warmup' must be true or false")
    cases = [_case(path, "together", raw) for raw in _list(path, data, "together")]
    cases += [_case(path, "apart", raw) for raw in _list(path, data, "apart")]
    if not cases:
        raise ThresholdError(f"{path}: no [[together]] or [[apart]] case")
    names = [case.name for case in cases]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ThresholdError(f"{path}: case name {duplicated[0]!r} is used twice")
    return CaseFile(path, path.parent / signals, tuple(cases), warmup)


def _list(path: Path, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ThresholdError(f"{path}: '{key}' must be an array of tables ([[{key}]])")
    return items


def _case(path: Path, kind: CaseKind, raw: Mapping[str, Any]) -> Case:
    name, ids, why = raw.get("name"), raw.get("signals"), raw.get("why", "")
    if not isinstance(name, str) or not name.strip():
        raise ThresholdError(f"{path}: every [[{kind}]] case needs a name")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise ThresholdError(f"{path}: case {name!r}: 'signals' must be a list of distinct signal ids")
    if kind == "together" and len(ids) < 2:
        raise ThresholdError(f"{path}: case {name!r}: a [[together]] group needs at least 2 signals")
    if kind == "apart" and len(ids) != 2:
        raise ThresholdError(f"{path}: case {name!r}: an [[apart]] case is a pair of exactly 2 signals")
    return Case(name, kind, tuple(ids), str(why))


def run_cases(cases: CaseFile, worker: str, env: Mapping[str, str] | None = None) -> list[CaseResult]:
    """Run `worker` in-process on the case signals and check every case."""
    from harness.producer.files import read_signals  # pyarrow: slow to import

    signals = list(read_signals(cases.signals))
    known = {signal.signal_id for signal in signals}
    for case in cases.cases:
        absent = [sid for sid in case.signal_ids if sid not in known]
        if absent:
            raise ThresholdError(f"{cases.path}: case {case.name!r}: signal {absent[0]!r} is not in {cases.signals}")
    hosted = InProcessWorker.load(worker, env, name=f"threshold-{worker}")
    if cases.warmup:
        hosted.warm_up(signals)
    final = dict(zip((s.signal_id for s in signals), hosted.assign(signals), strict=True))
    return [check(case, final) for case in cases.cases]


def check(case: Case, assignments: Mapping[str, Assignment]) -> CaseResult:
    """A case needs every signal clustered; then together means one label, apart two different ones."""
    unclustered = [sid for sid in case.signal_ids if assignments[sid].outcome != "clustered"]
    if unclustered:
        got = assignments[unclustered[0]]
        reason = f"{got.outcome}: {got.error_type}" if got.error_type else got.outcome
        return CaseResult(case, False, f"{unclustered[0]} was not clustered ({reason})")
    labels = [str(assignments[sid].label) for sid in case.signal_ids]
    if case.kind == "together":
        if len(set(labels)) == 1:
            return CaseResult(case, True, f"{len(labels)} signals in {labels[0]}")
        return CaseResult(case, False, "split across " + _spread(case.signal_ids, labels))
    if labels[0] != labels[1]:
        return CaseResult(case, True, f"{labels[0]} != {labels[1]}")
    return CaseResult(case, False, f"both in {labels[0]}")


def _spread(ids: Sequence[str], labels: Sequence[str]) -> str:
    by_label: dict[str, list[str]] = {}
    for sid, label in zip(ids, labels, strict=True):
        by_label.setdefault(label, []).append(sid)
    return "; ".join(f"{label}: {', '.join(members)}" for label, members in by_label.items())
