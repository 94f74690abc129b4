"""How a worker is stopped and started: `process` (pid of its lease), `docker` (compose too), or `none`.

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
from pathlib import Path

import redis

from harness.cutover import launch
from harness.errors import HarnessError
from harness.partitions import Partition
from harness.transport import keys, presence


class StopperError(RuntimeError, HarnessError):
    pass


def heartbeat(client: redis.Redis, worker: str, partition: Partition | None = None) -> dict[str, str]:
    """The worker's last heartbeat (with a partition: that partition's runtime's)."""
    beat = client.hgetall(keys.scoped(keys.heartbeat_key(worker), partition))
    return {k.decode(): v.decode() for k, v in beat.items()}


def alive(client: redis.Redis, worker: str, partitions: int = 1) -> bool:
    """A live process holds a lease of the worker (running, or idling drained): a second copy would be refused."""
    return bool(presence.lease_holders(client, worker, partitions))


def wait_stopped(client: redis.Redis, worker: str, timeout_s: float, partitions: int = 1) -> bool:
    """True once the worker consumes no more on any partition: exited (leases gone), or idling drained."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not presence.consuming(client, worker, partitions):
            return True
        time.sleep(0.1)
    return False


def default_log_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "harness" / "logs"


class WorkerStopper(ABC):
    partitions: int = 1  # the input's partitions: a worker's replicas hold one lease each (docs/partitions.md)
    @abstractmethod
    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None: ...

    @abstractmethod
    def start(self, client: redis.Redis, worker: str) -> str | None:
        """Start the worker; returns where it logs, when known."""

    def can_start(self, client: redis.Redis, worker: str) -> bool:
        """Whether `start` knows how to bring this worker up (a rollback is refused otherwise)."""
        return False

    def record_launch(self, client: redis.Redis, worker: str) -> None:
        """Before a drain: remember what `start` will need later (the process backend's command line)."""
        return None

    def how_to_start(self, worker: str) -> str:
        return f"start {worker} with your own tooling first"


class NoStopper(WorkerStopper):
    """The harness flips roles and drains; the operator's own tooling stops and starts processes."""

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        if not wait_stopped(client, worker, timeout_s, self.partitions):
            raise StopperError(f"{worker} did not drain within {timeout_s:.0f}s (heartbeat still 'running')")

    def start(self, client: redis.Redis, worker: str) -> str | None:
        """Nothing to do: the operator restarts the worker; the cleared drain flag lets it run."""
        return None


class ProcessStopper(WorkerStopper):
    """Workers on this host, found by the pid of their lease; started again from --start-args or from the
    command line a cutover recorded when it stopped them, with their output in a log file."""

    def __init__(self, start_args: Sequence[str] = (), redis_url: str | None = None,
                 log_dir: Path | None = None) -> None:
        self._start_args = list(start_args)
        self._redis_url = redis_url
        self._log_dir = log_dir or default_log_dir()

    def record_launch(self, client: redis.Redis, worker: str) -> None:
        pid = launch.holder_pid(client, worker)
        spec = launch.capture(pid) if pid is not None else None
        if spec is not None:
            launch.record(client, worker, spec)

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        if wait_stopped(client, worker, timeout_s / 2, self.partitions):
            return
        pids = launch.holder_pids(client, worker, self.partitions)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)  # finishes the batch in hand and acks it
            except ProcessLookupError:
                continue  # gone without saying so (killed): its leases expire by themselves
        if pids and self.partitions == 1 and not any(_running(pid) for pid in pids):
            client.hset(keys.heartbeat_key(worker), "state", "stopped")  # nothing consumes any more: record it
            return
        if not wait_stopped(client, worker, timeout_s / 2, self.partitions):
            shown = ", ".join(map(str, pids)) or "none on this host"
            raise StopperError(f"{worker} (pid {shown}) did not stop within {timeout_s:.0f}s")

    def can_start(self, client: redis.Redis, worker: str) -> bool:
        return bool(self._start_args) or launch.load(client, worker) is not None

    def how_to_start(self, worker: str) -> str:
        return (f"no command line was recorded for {worker} (it was not stopped by a cutover on this host): "
                f"give --start-args with the `harness worker` arguments that start it")

    def start(self, client: redis.Redis, worker: str) -> str | None:
        if alive(client, worker, self.partitions):
            return launch.log_file(client, worker)
        spec = launch.load(client, worker)
        if self._start_args:
            argv, cwd, env = [sys.executable, "-m", "harness", *self._start_args], os.getcwd(), {}
        elif spec is not None:
            argv, cwd, env = list(spec.argv), spec.cwd, dict(spec.env)
        else:
            raise StopperError(self.how_to_start(worker))
        if self._redis_url:
            env["HARNESS_REDIS_URL"] = self._redis_url  # in the environment: never in argv, never stored
        log = self._open_log(worker)
        with log.open("ab") as output:
            subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, start_new_session=True,
                             stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        launch.record_log(client, worker, str(log))
        return str(log)

    def _open_log(self, worker: str) -> Path:
        try:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StopperError(f"cannot create the worker log folder {self._log_dir}: {exc.strerror}") from None
        return self._log_dir / f"{worker}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"


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
        wait_stopped(client, worker, timeout_s / 2, self.partitions)
        for container in containers:
            container.stop(timeout=int(max(timeout_s / 2, 1)))  # type: ignore[attr-defined]

    def can_start(self, client: redis.Redis, worker: str) -> bool:
        return bool(self._containers(worker))

    def how_to_start(self, worker: str) -> str:
        where = f" in stack {self._stack}" if self._stack else ""
        return f"no container labelled {self._label}={worker}{where} to start"

    def start(self, client: redis.Redis, worker: str) -> str | None:
        names = []
        for container in self._containers(worker):
            container.start()  # type: ignore[attr-defined]
            names.append(str(container.name))  # type: ignore[attr-defined]
        return ", ".join(f"docker logs {name}" for name in names) or None


def make_stopper(kind: str, start_args: Sequence[str] = (), redis_url: str | None = None,
                 log_dir: Path | None = None, partitions: int = 1) -> WorkerStopper:
    stopper: WorkerStopper
    if kind == "process":
        stopper = ProcessStopper(start_args, redis_url, log_dir)
    elif kind == "docker":
        stopper = DockerStopper(stack=os.environ.get("HARNESS_STACK") or None)
    elif kind == "none":
        stopper = NoStopper()
    else:
        raise StopperError(f"unknown stop backend {kind!r}: use process, docker or none")
    stopper.partitions = partitions
    return stopper


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
