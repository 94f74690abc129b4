"""How the process backend starts a worker again: the command line, folder and non-secret settings it ran
with (read from /proc when a cutover stops it, kept in Redis), and the log file a restarted worker writes."""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.transport import keys, presence
from harness.transport.replies import text

# Settings whose value may be a secret are never stored: the restart gets the URL from the rollback itself.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DSN|CREDENTIAL|REDIS_URL|_KEY$", re.IGNORECASE)
KEPT_ENV = ("PYTHONPATH",)  # besides non-secret HARNESS_* settings: what finds the worker's code
URL_FLAG = "--redis-url"


@dataclass(frozen=True)
class LaunchSpec:
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)


def holder_pids(client: redis.Redis, worker: str, partitions: int = 1) -> list[int]:
    """The pids on this host of the processes holding the worker's partitions (one without partitions)."""
    if partitions == 1:
        pid = holder_pid(client, worker)
        return [] if pid is None else [pid]
    found = set()
    for holder in presence.lease_holders(client, worker, partitions).values():
        host, _, number = holder.rpartition(" ")
        if host == socket.gethostname() and number.isdigit() and int(number) > 0:
            found.add(int(number))
    return sorted(found)


def holder_pid(client: redis.Redis, worker: str) -> int | None:
    """The pid of the live lease holder when it runs on this host; else the heartbeat's pid on this host."""
    holder = text(client.get(keys.lease_key(worker)) or b"").partition(" ")[2]
    host, _, pid = holder.rpartition(" ")
    if not holder:
        beat = {text(k): text(v) for k, v in client.hgetall(keys.heartbeat_key(worker)).items()}
        host, pid = beat.get("host", ""), beat.get("pid", "")
    return int(pid) if host == socket.gethostname() and pid.isdigit() and int(pid) > 0 else None


def without_url(argv: list[str]) -> tuple[str, ...]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == URL_FLAG:
            skip = True
        elif not arg.startswith(URL_FLAG + "="):
            kept.append(arg)
    return tuple(kept)


def capture(pid: int, proc: Path = Path("/proc")) -> LaunchSpec | None:
    """The process's launch, secrets left out; None when it cannot be read (gone, another user, no /proc)."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = os.readlink(proc / str(pid) / "cwd")
        environ = (proc / str(pid) / "environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    env = dict(item.split("=", 1) for item in environ if "=" in item)
    kept = {name: value for name, value in env.items()
            if name in KEPT_ENV or (name.startswith("HARNESS_") and not SECRET_NAME.search(name))}
    argv = [arg for arg in argv if arg]
    return LaunchSpec(without_url(argv), cwd, kept) if argv else None


def record(client: redis.Redis, worker: str, spec: LaunchSpec) -> None:
    client.hset(keys.launch_key(worker), mapping={"argv": json.dumps(list(spec.argv)), "cwd": spec.cwd,
                                                  "env": json.dumps(spec.env)})


def load(client: redis.Redis, worker: str) -> LaunchSpec | None:
    raw = {text(k): text(v) for k, v in client.hgetall(keys.launch_key(worker)).items()}
    if "argv" not in raw:
        return None
    return LaunchSpec(tuple(json.loads(raw["argv"])), raw.get("cwd", "."), json.loads(raw.get("env", "{}")))


def record_log(client: redis.Redis, worker: str, log: str) -> None:
    client.hset(keys.launch_key(worker), "log", log)


def log_file(client: redis.Redis, worker: str) -> str | None:
    """Where the worker writes its log: the live local holder's stderr file, or the file a restart opened."""
    pid = holder_pid(client, worker) if client.exists(keys.lease_key(worker)) else None
    if pid is not None:
        try:
            target = os.readlink(f"/proc/{pid}/fd/2")
        except OSError:
            target = ""
        if target.startswith("/") and not target.startswith("/dev/"):
            return target
    recorded = client.hget(keys.launch_key(worker), "log")
    return None if recorded is None else text(recorded)
