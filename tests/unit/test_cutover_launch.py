"""The process backend's launch spec: recorded from /proc without secrets, replayed with output in a log file."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import redis

from harness.cutover import launch
from harness.cutover.stoppers import ProcessStopper, StopperError
from harness.transport import keys
from tests.support.processes import wait_for


def fake_proc(root: Path, pid: int, argv: list[str], env: dict[str, str], cwd: Path) -> Path:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (folder / "environ").write_bytes("\0".join(f"{k}={v}" for k, v in env.items()).encode() + b"\0")
    (folder / "cwd").symlink_to(cwd)
    return root


def test_a_captured_launch_keeps_the_command_and_settings_but_no_secret(tmp_path: Path) -> None:
    argv = ["/venv/bin/python", "-m", "harness", "worker", "legacy", "--redis-url", "redis://:pw@db/0",
            "--block-ms", "100", "--redis-url=redis://:pw@db/0"]
    env = {"HARNESS_BATCH_SIZE": "50", "HARNESS_REDIS_URL": "redis://:pw@db/0", "HARNESS_REDIS_PASSWORD": "pw",
           "SENTRY_DSN": "https://key@sentry", "HOME": "/root", "PYTHONPATH": "/src"}
    proc = fake_proc(tmp_path / "proc", 42, argv, env, tmp_path)

    spec = launch.capture(42, proc)

    assert spec == launch.LaunchSpec(("/venv/bin/python", "-m", "harness", "worker", "legacy", "--block-ms", "100"),
                                     str(tmp_path), {"HARNESS_BATCH_SIZE": "50", "PYTHONPATH": "/src"})
    assert launch.capture(43, proc) is None, "a process that is gone has no launch"


def test_a_cutover_records_the_launch_of_the_local_lease_holder(redis_client: redis.Redis) -> None:
    # This test process stands in for the worker that holds the lease on this host.
    redis_client.set(keys.lease_key("legacy"), f"5 {socket.gethostname()} {os.getpid()}")
    ProcessStopper().record_launch(redis_client, "legacy")
    spec = launch.load(redis_client, "legacy")
    own_argv = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().decode().split("\0")
    assert spec is not None
    assert spec.argv == launch.without_url([arg for arg in own_argv if arg])
    assert spec.cwd == os.getcwd()


def test_a_worker_started_from_its_recorded_launch_logs_to_a_file(redis_client: redis.Redis, tmp_path: Path) -> None:
    script = "import os; print('started with a redis url:', bool(os.environ.get('HARNESS_REDIS_URL')))"
    launch.record(redis_client, "legacy", launch.LaunchSpec((sys.executable, "-c", script), str(tmp_path), {}))
    stopper = ProcessStopper(redis_url="redis://localhost:6379/0", log_dir=tmp_path / "logs")
    assert stopper.can_start(redis_client, "legacy")

    log = stopper.start(redis_client, "legacy")

    assert log is not None and Path(log).parent == tmp_path / "logs"
    assert launch.log_file(redis_client, "legacy") == log
    wait_for(lambda: "started with a redis url: True" in Path(log).read_text(), 30, "the started process's output")


def test_without_a_recorded_launch_or_start_args_the_process_backend_cannot_start(redis_client: redis.Redis) -> None:
    stopper = ProcessStopper()
    assert not stopper.can_start(redis_client, "legacy")
    with pytest.raises(StopperError, match="give --start-args"):
        stopper.start(redis_client, "legacy")
