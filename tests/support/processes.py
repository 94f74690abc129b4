"""Start `harness` subcommands as real processes and wait on Redis for their effects."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from harness.contracts import SignalClustered, decode_clustered
from harness.transport import keys

ROOT = Path(__file__).resolve().parents[2]


def start_harness(args: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
                  ) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "harness", *args], env=full_env,
                            stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)


def start_worker(spec: str, redis_url: str, *extra: str, env: dict[str, str] | None = None,
                 log: Path | None = None) -> subprocess.Popen[bytes]:
    return start_harness(["worker", spec, "--redis-url", redis_url, "--block-ms", "100", *extra],
                         env=env, log=log)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition",
             processes: Sequence[subprocess.Popen[Any]] = ()) -> None:
    """Poll until predicate() holds; fail at once if one of `processes` died meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited with {process.returncode} while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def child_pids(parent: int | None = None) -> set[int]:
    """Children of `parent` (this process by default), exited-but-unreaped ones included."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        # The command name, in parentheses, may hold spaces: the ppid is the 2nd field after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.add(int(entry.name))
    return found


def count_in_log(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def results(client: redis.Redis, worker: str) -> list[SignalClustered]:
    entries = client.xrange(keys.results_stream(worker))
    return [decode_clustered(fields[keys.PAYLOAD_FIELD]) for _, fields in entries]


def result_count(client: redis.Redis, worker: str) -> int:
    return int(client.xlen(keys.results_stream(worker)))


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
