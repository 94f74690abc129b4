"""Experiments, in Scientist's vocabulary: a named comparison of a control (the primary) with a candidate (a
shadow), from a start to an end; their records live in Redis, and at most one is current at a time.

Before any experiment is defined, the implicit experiment "default" (legacy vs candidate, on the keys the
comparator always used) is current, so a deployment that never names one works as it always did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

from harness.errors import HarnessError
from harness.transport import keys
from harness.transport.replies import server_time_ms, text

DEFAULT = keys.DEFAULT_EXPERIMENT
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # one key segment: no ':', no glob characters


class ExperimentError(ValueError, HarnessError):
    """An unknown experiment, a name taken: exit 1."""


class ExperimentUsageError(ExperimentError):
    """A name or workers that cannot make an experiment: exit 2, like a usage error."""

    exit_code = 2


@dataclass(frozen=True)
class Experiment:
    name: str
    control: str = "legacy"
    candidate: str = "candidate"
    started_ms: int | None = None
    start_entry: str = "0-0"  # the input's last entry at the start: only signals after it are compared
    starts: dict[str, str] = field(default_factory=dict)  # results stream -> its last id at the start
    ended_ms: int | None = None
    end_reason: str | None = None
    started_by: str | None = None  # what started it: `experiment start`, a cutover, a rollback
    input_stream: str = keys.DEFAULT_INPUT_STREAM
    implicit: bool = False  # the default experiment, never declared (not in the registry)

    @property
    def running(self) -> bool:
        return self.ended_ms is None

    @property
    def state_key(self) -> str:
        return keys.experiment_state_key(self.name)

    @property
    def summary_key(self) -> str:
        return keys.experiment_summary_key(self.name)

    @property
    def report_key(self) -> str:
        return keys.experiment_report_key(self.name)

    def group(self, base: str = keys.COMPARATOR_GROUP) -> str:
        return keys.experiment_group(self.name, base)

    def results_start(self, stream: str) -> str:
        """Where the experiment's consumer group starts on a results stream: nothing older can count."""
        return self.starts.get(stream, "0")

    def describe(self) -> dict[str, Any]:
        """The report's `experiment` section."""
        return {"name": self.name, "control": self.control, "candidate": self.candidate,
                "started_ms": self.started_ms, "ended_ms": self.ended_ms, "end_reason": self.end_reason,
                "start_entry": self.start_entry, "started_by": self.started_by}

    def to_json(self) -> str:
        record = asdict(self)
        record.pop("implicit")
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Experiment:
        record = json.loads(raw)
        known = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        return cls(**known)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise ExperimentUsageError(f"experiment name {name!r}: use up to 64 letters, digits, '.', '_' or '-'")
    return name


def implicit_default(control: str = "legacy", candidate: str = "candidate") -> Experiment:
    return Experiment(DEFAULT, control, candidate, implicit=True)


def load_all(client: redis.Redis) -> list[Experiment]:
    """Every recorded experiment, oldest start first."""
    found = [Experiment.from_json(raw) for raw in client.hvals(keys.EXPERIMENTS_KEY)]
    return sorted(found, key=lambda exp: (exp.started_ms or 0, exp.name))


def get(client: redis.Redis, name: str, control: str = "legacy", candidate: str = "candidate") -> Experiment | None:
    raw = client.hget(keys.EXPERIMENTS_KEY, name)
    if raw is not None:
        return Experiment.from_json(raw)
    return implicit_default(control, candidate) if name == DEFAULT else None


def current(client: redis.Redis, control: str = "legacy", candidate: str = "candidate") -> Experiment | None:
    """The experiment being compared: the pointer's, the implicit default when none was ever recorded, else None."""
    name = client.get(keys.CURRENT_EXPERIMENT_KEY)
    if name is not None:
        return get(client, text(name), control, candidate)
    if not client.exists(keys.EXPERIMENTS_KEY):
        return implicit_default(control, candidate)
    return None


def resolve(client: redis.Redis, name: str | None = None, control: str = "legacy",
            candidate: str = "candidate") -> Experiment:
    """The named experiment; without a name the current one, else the latest (a finished one still reports)."""
    if name is not None:
        found = get(client, name, control, candidate)
        if found is None:
            known = ", ".join(exp.name for exp in load_all(client)) or "none"
            raise ExperimentError(f"no experiment {name!r} (known: {known})")
        return found
    found = current(client, control, candidate)
    if found is not None:
        return found
    return load_all(client)[-1]  # current() is None only once the registry holds one


def start(client: redis.Redis, name: str, control: str, candidate: str, *, started_by: str = "experiment start",
          input_stream: str = keys.DEFAULT_INPUT_STREAM, end_reason: str | None = None,
          ) -> tuple[Experiment, Experiment | None]:
    """Start `name` as the current experiment, ending the current one; returns (started, ended or None)."""
    check_name(name)
    for worker in (control, candidate):
        try:
            keys.check_worker_name(worker)
        except ValueError as exc:
            raise ExperimentUsageError(str(exc)) from None
    if control == candidate:
        raise ExperimentUsageError(f"the control and the candidate are both {control!r}: compare two workers")
    if name == DEFAULT or client.hexists(keys.EXPERIMENTS_KEY, name):
        raise ExperimentError(f"experiment {name!r} exists already: give the new one another name")
    ended = stop(client, reason=end_reason or f"experiment {name} started")
    streams = [keys.results_stream(control), keys.results_stream(candidate)]
    tips = _tips(client, [*streams, input_stream])
    experiment = Experiment(
        name, control, candidate, started_ms=int(server_time_ms(client)), start_entry=tips[input_stream] or "0-0",
        starts={stream: tips[stream] or "0" for stream in streams}, started_by=started_by,
        input_stream=input_stream)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.EXPERIMENTS_KEY, name, experiment.to_json())
        pipe.set(keys.CURRENT_EXPERIMENT_KEY, name)
        pipe.execute()
    return experiment, ended


def _tips(client: redis.Redis, streams: list[str]) -> dict[str, str | None]:
    """The last id of each stream, read in one transaction; the results streams come first, so a result
    newer than its tip is for an input entry newer than the input's tip: never older than the start."""
    with client.pipeline(transaction=True) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, count=1)
        replies = pipe.execute()
    return {stream: text(reply[0][0]) if reply else None for stream, reply in zip(streams, replies, strict=True)}


def stop(client: redis.Redis, name: str | None = None, *, reason: str = "stopped") -> Experiment | None:
    """End the named experiment (default: the current one); None when there is none. Ending one twice
    changes nothing. An implicit default is recorded as it ends, with the workers its comparator named."""
    experiment = current(client) if name is None else resolve(client, name)
    if experiment is None or not experiment.running:
        return experiment
    if experiment.implicit:
        summary = {text(k): text(v) for k, v in client.hgetall(experiment.summary_key).items()}
        experiment = replace(experiment, control=summary.get("control", experiment.control),
                             candidate=summary.get("candidate", experiment.candidate), implicit=False)
    ended = replace(experiment, ended_ms=int(server_time_ms(client)), end_reason=reason)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.EXPERIMENTS_KEY, ended.name, ended.to_json())
        if text(client.get(keys.CURRENT_EXPERIMENT_KEY) or b"") == ended.name:
            pipe.delete(keys.CURRENT_EXPERIMENT_KEY)
        pipe.execute()
    return ended


def on_switch(client: redis.Redis, primary: str, shadow: str, epoch: int, action: str,
              input_stream: str = keys.DEFAULT_INPUT_STREAM) -> Experiment:
    """After a cutover or rollback: the new primary is the control, the worker it replaced the candidate.

    Named after the epoch, so a re-run after a crash finds it started and changes nothing."""
    name = check_name(f"{primary}-vs-{shadow}-e{epoch}")
    existing = get(client, name)
    if existing is not None:
        return existing
    started, _ = start(client, name, primary, shadow, started_by=f"{action} to {primary}", input_stream=input_stream,
                       end_reason=f"{action} to {primary} (epoch {epoch})")
    return started


def on_retire(client: redis.Redis, worker: str) -> Experiment | None:
    """A retired worker is no longer compared: the current experiment ends if it is one of its sides."""
    experiment = current(client)
    if experiment is None or worker not in (experiment.control, experiment.candidate):
        return None
    return stop(client, experiment.name, reason=f"{worker} retired")


def freeze(client: redis.Redis, experiment: Experiment, report: Mapping[str, Any]) -> None:
    """Keep the report a finished experiment ended with."""
    client.set(experiment.report_key, json.dumps(report))


def final_report(client: redis.Redis, experiment: Experiment) -> dict[str, Any] | None:
    raw = client.get(experiment.report_key)
    return None if raw is None else dict(json.loads(raw))
