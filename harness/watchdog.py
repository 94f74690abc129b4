"""Workers gone silent: a heartbeat older than a bound, unless the worker stopped in order (stopped, drained)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from harness.errors import ConfigurationError
from harness.notify import Event
from harness.transport import keys

ORDERLY_STATES = ("stopped", "drained")  # a worker that exited on purpose (SIGTERM, cutover) is not silent


@dataclass(frozen=True)
class Beat:
    worker: str
    state: str | None  # None: no heartbeat at all (never started, or retired)
    age_s: float | None  # since its last heartbeat, on the Redis server's clock
    host: str = ""
    pid: str = ""

    def silent(self, after_s: float) -> bool:
        if self.state in ORDERLY_STATES:
            return False
        return self.age_s is None or self.age_s > after_s

    def line(self) -> str:
        if self.age_s is None:
            return f"worker {self.worker} has no heartbeat"
        where = f" on {self.host} pid {self.pid}" if self.host else ""
        return f"worker {self.worker} last seen {self.age_s:.0f} s ago ({self.state}{where})"


def heartbeats(client: redis.Redis, workers: Sequence[str] = ()) -> list[Beat]:
    """The named workers' heartbeats, or every worker that has one."""
    names = list(workers) or sorted(_known_workers(client))
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.heartbeat_key(_checked(name)))
    beats = []
    for name, raw in zip(names, pipe.execute(), strict=True):
        fields = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        seen = fields.get("last_seen_ms")
        age = None if seen is None else max(now_ms - int(seen), 0) / 1000
        beats.append(Beat(name, fields.get("state"), age, fields.get("host", ""), fields.get("pid", "")))
    return beats


def _checked(worker: str) -> str:
    try:
        return keys.check_worker_name(worker)
    except ValueError as exc:
        raise ConfigurationError(f"--worker: {exc}") from None


def _known_workers(client: redis.Redis) -> set[str]:
    prefix = keys.heartbeat_key("")
    return {key.decode()[len(prefix):] for key in client.scan_iter(match=keys.every_worker(keys.heartbeat_key))}


@dataclass
class Watchdog:
    """Tells once when a worker goes silent and once when it is back, not at every check."""

    silent_after_s: float
    silent: set[str] = field(default_factory=set)

    def check(self, beats: Sequence[Beat]) -> list[Event]:
        events = []
        for beat in beats:
            if beat.silent(self.silent_after_s) and beat.worker not in self.silent:
                self.silent.add(beat.worker)
                events.append(Event("worker.silent", f"harness: {beat.line()} (silent after "
                                    f"{self.silent_after_s:g} s)", _data(beat, self.silent_after_s)))
            elif not beat.silent(self.silent_after_s) and beat.worker in self.silent:
                self.silent.discard(beat.worker)
                events.append(Event("worker.back", f"harness: worker {beat.worker} is back ({beat.state})",
                                    _data(beat, self.silent_after_s)))
        return events


def _data(beat: Beat, silent_after_s: float) -> dict[str, object]:
    return {"worker": beat.worker, "state": beat.state, "age_s": beat.age_s, "host": beat.host, "pid": beat.pid,
            "silent_after_s": silent_after_s}
