"""How a worker is stopped and started: `process` (pid from its heartbeat), `docker`, or `none`.

Every backend first relies on the drain flag (the worker finishes its batch, acks and exits);
the backend then makes sure the worker stays down, or brings it back on rollback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import redis

from harness.errors import HarnessError
from harness.transport import keys


class StopperError(RuntimeError, HarnessError):
    pass


def heartbeat(client: redis.Redis, worker: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(keys.heartbeat_key(worker)).items()}


def wait_stopped(client: redis.Redis, worker: str, timeout_s: float) -> bool:
    """True once the worker consumes no more: exited, or idling drained after a restart."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if heartbeat(client, worker).get("state", "stopped") in ("stopped", "drained"):
            return True
        time.sleep(0.1)
    return False


HEARTBEAT_FRESH_MS = 5_000  # a worker that has not beaten for this long is taken for dead


def alive(client: redis.Redis, worker: str) -> bool:
    """A worker process is up (running, or idling drained): starting another would split its input."""
    beat = heartbeat(client, worker)
    fresh = time.time() * 1000 - float(beat.get("last_seen_ms", 0)) < HEARTBEAT_FRESH_MS
    return fresh and beat.get("state") in ("running", "drained")


class WorkerStopper(ABC):
    @abstractmethod
    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None: ...

    @abstractmethod
    def start(self, client: redis.Redis, worker: str) -> None: ...


class NoStopper(WorkerStopper):
    """The harness flips roles and drains; the operator's own tooling stops and starts processes."""

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        if not wait_stopped(client, worker, timeout_s):
            raise StopperError(f"{worker} did not drain within {timeout_s:.0f}s (heartbeat still 'running')")

    def start(self, client: redis.Redis, worker: str) -> None:
        """Nothing to do: the operator restarts the worker; the cleared drain flag lets it run."""


class ProcessStopper(WorkerStopper):
    """Workers started by the harness on this host; found by the pid in their heartbeat."""

    def __init__(self, start_args: Sequence[str] = ()) -> None:
        self._start_args = list(start_args)

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        if wait_stopped(client, worker, timeout_s / 2):
            return
        pid = int(heartbeat(client, worker).get("pid", 0))
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)  # finishes the batch in hand and acks it
            except ProcessLookupError:
                # Gone without saying so (killed): nothing consumes any more; record it.
                client.hset(keys.heartbeat_key(worker), "state", "stopped")
                return
        if not wait_stopped(client, worker, timeout_s / 2):
            raise StopperError(f"{worker} (pid {pid}) did not stop within {timeout_s:.0f}s")

    def start(self, client: redis.Redis, worker: str) -> None:
        if not self._start_args or alive(client, worker):
            return
        subprocess.Popen([sys.executable, "-m", "harness", *self._start_args], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


class DockerStopper(WorkerStopper):
    """Containers labelled `harness.worker=<name>`, and `harness.stack=<stack>` when a stack is given.

    The stack (HARNESS_STACK, set in every container of a deployment) keeps a cutover in preprod
    from stopping production's legacy when both run on one Docker engine.
    """

    def __init__(self, label: str = "harness.worker", stack: str | None = None) -> None:
        self._label = label
        self._stack = stack

    def _containers(self, worker: str) -> list[object]:
        from docker.client import DockerClient
        from docker.errors import DockerException

        try:
            engine = DockerClient.from_env()
            labels = [f"{self._label}={worker}"] + ([f"harness.stack={self._stack}"] if self._stack else [])
            return list(engine.containers.list(all=True, filters={"label": labels}))
        except DockerException as exc:
            raise StopperError(f"cannot reach the Docker engine: {exc}") from None

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        containers = self._containers(worker)
        if not containers:
            where = f" in stack {self._stack}" if self._stack else ""
            raise StopperError(f"no container labelled {self._label}={worker}{where}")
        wait_stopped(client, worker, timeout_s / 2)
        for container in containers:
            container.stop(timeout=int(max(timeout_s / 2, 1)))  # type: ignore[attr-defined]

    def start(self, client: redis.Redis, worker: str) -> None:
        for container in self._containers(worker):
            container.start()  # type: ignore[attr-defined]


def make_stopper(kind: str, start_args: Sequence[str] = ()) -> WorkerStopper:
    if kind == "process":
        return ProcessStopper(start_args)
    if kind == "docker":
        return DockerStopper(stack=os.environ.get("HARNESS_STACK") or None)
    if kind == "none":
        return NoStopper()
    raise StopperError(f"unknown stop backend {kind!r}: use process, docker or none")
