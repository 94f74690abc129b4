"""Start `harness` subcommands as real processes and wait on Redis for their effects."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import redis

from harness.contracts import SignalClustered, decode_clustered
from harness.embedded_cluster import wait_for  # noqa: F401 - re-exported: one polling helper for tests and cluster
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
