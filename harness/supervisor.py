"""Starts harness commands as child processes and makes sure none outlives its parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Linux: the kernel sends SIGTERM to the child if the parent dies, even by SIGKILL.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


REDIS_URL_ENV = "HARNESS_REDIS_URL"  # how children get the Redis URL: never in argv, which any user can read


class Supervisor:
    def __init__(self, log_dir: Path, redis_url: str | None = None) -> None:
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._redis_env = {REDIS_URL_ENV: redis_url} if redis_url else {}

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `harness ARGS`; the Redis URL (password included) goes in its environment, not its argv."""
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            env={**os.environ, **(env or {}), **self._redis_env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        log.close()
        self.children[name] = process
        return process

    def failed(self) -> dict[str, int]:
        """Children that exited with an error code."""
        return {name: p.returncode for name, p in self.children.items() if p.poll() not in (None, 0)}

    def stop(self, name: str, timeout_s: float = 15.0) -> int | None:
        process = self.children.get(name)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop_all(self, timeout_s: float = 15.0) -> None:
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.children.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tail(self, name: str, lines: int = 5) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
