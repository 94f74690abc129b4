"""One fault scenario's world: a private redis-server with AOF, real harness processes, and the figures.

The figures are counted from Redis itself: every input entry must have exactly one result per
worker (lost: none; doubled: none) and, with a primary, exactly one production entry.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.comparator.service import SUMMARY_KEY
from harness.embedded_redis import EmbeddedRedis
from harness.transport import keys
from tests.support.processes import count_in_log, results, start_harness, start_worker, stop, wait_for


@dataclass
class Figures:
    produced: int
    outputs: dict[str, int]  # results per worker
    production: int | None
    dead_letters: int
    lost: int
    doubled: int
    extra: dict[str, object] = field(default_factory=dict)

    def line(self, scenario: str) -> str:
        parts = [f"produced={self.produced}", *(f"{name}={count}" for name, count in self.outputs.items())]
        if self.production is not None:
            parts.append(f"production={self.production}")
        parts += [f"dead_letters={self.dead_letters}", f"lost={self.lost}", f"doubled={self.doubled}"]
        parts += [f"{name}={value}" for name, value in self.extra.items()]
        return f"FAULT {scenario}: " + " ".join(parts)


class FaultStack:
    """Starts, kills and restarts processes; every process it started is stopped by `close`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "redis").mkdir(parents=True, exist_ok=True)
        self.server = EmbeddedRedis(persistence=True, folder=str(folder / "redis")).start()
        self.client = redis.Redis.from_url(self.server.url)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return self.server.url

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def worker(self, name: str, spec: str, *extra: str, env: dict[str, str] | None = None,
               label: str | None = None) -> subprocess.Popen[bytes]:
        """Worker `name`, known to the stack (its log, `kill`) as `label` (default: its name)."""
        label = label or name
        process = start_worker(spec, self.url, "--name", name, *extra, env=env, log=self.log(label))
        self.processes[label] = process
        return process

    def harness(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        process = start_harness([args[0], "--redis-url", self.url, *args[1:]], log=self.log(name))
        self.processes[name] = process
        return process

    def comparator(self, *extra: str) -> subprocess.Popen[bytes]:
        return self.harness("comparator", "comparator", "--checkpoint", "0.1", *extra)

    def kill(self, name: str) -> None:
        """SIGKILL, then reap: a zombie's pid still looks alive to the lease's holder check."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def restart_redis(self, while_down: Iterable[tuple[str, str]]) -> None:
        """Stop redis-server (its AOF keeps everything), wait until each (process, text) shows in that
        process's log, then start it again on the same socket."""
        self.client.close()
        self.server.stop()
        for name, text in while_down:
            wait_for(lambda name=name, text=text: count_in_log(self.log(name), text) > 0, 60,
                     f"{name} to log {text!r} while Redis is down", [self.processes[name]])
        self.server.start()
        self.client = redis.Redis.from_url(self.server.url)

    def alive(self, *names: str) -> list[subprocess.Popen[bytes]]:
        return [self.processes[name] for name in names]

    def summary_counts(self) -> dict[str, int]:
        counts = self.client.hget(SUMMARY_KEY, "counts")
        return json.loads(counts) if counts else {}

    def close(self) -> None:
        for process in self.processes.values():
            stop(process, timeout_s=10.0)
        self.client.close()
        self.server.stop()


@contextmanager
def fault_stack(folder: Path) -> Iterator[FaultStack]:
    stack = FaultStack(folder)
    try:
        yield stack
    finally:
        stack.close()


def input_ids(client: redis.Redis, stream: str = keys.DEFAULT_INPUT_STREAM) -> list[str]:
    return [entry_id.decode() for entry_id, _ in client.xrange(stream)]


def production_entries(client: redis.Redis) -> list[str]:
    return [fields[b"entry"].decode() for _, fields in client.xrange(keys.PRODUCTION_STREAM)]


def count_figures(client: redis.Redis, workers: Iterable[str], production: bool = True) -> Figures:
    """Lost: input entries without a result (per worker) or a production entry; doubled: more than one."""
    inputs = input_ids(client)
    lost = doubled = 0
    outputs: dict[str, int] = {}
    dead = 0
    streams: dict[str, list[str]] = {
        worker: [r.input_entry_id or "" for r in results(client, worker)] for worker in workers}
    if production:
        streams["production"] = production_entries(client)
    for name, entries in streams.items():
        seen = Counter(entries)
        lost += sum(1 for entry in inputs if entry not in seen)
        doubled += sum(count - 1 for count in seen.values() if count > 1)
        if name != "production":
            outputs[name] = len(entries)
            dead += int(client.xlen(keys.dead_letter_stream(name)))
    return Figures(produced=len(inputs), outputs=outputs, production=len(streams["production"]) if production else None,
                   dead_letters=dead, lost=lost, doubled=doubled)


def all_results_in(client: redis.Redis, workers: Iterable[str], count: int) -> bool:
    return all(int(client.xlen(keys.results_stream(worker))) >= count for worker in workers)
