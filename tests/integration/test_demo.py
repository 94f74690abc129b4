"""`harness demo` end to end: real processes on a private redis-server, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from tests.support.processes import ROOT, result_count, wait_for


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", "demo", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def harness_processes_of(log_dir: str) -> list[str]:
    """Command lines of live processes started for this demo (its redis socket or log folder)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if log_dir in cmdline or log_dir.encode() in environ:
            found.append(cmdline)
    return found


def private_redis_socket(stderr: str) -> Path:
    line = next(line for line in stderr.splitlines() if "private redis-server on" in line)
    return Path(line.split("private redis-server on", 1)[1].strip().split()[0])


def private_redis_folder(stderr: str) -> str:
    return str(private_redis_socket(stderr).parent)


def test_demo_compares_every_signal_and_leaves_no_process_behind(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    run = demo("--signals", "1500", "--report-json", str(report_file))
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 0, stderr
    report = json.loads(report_file.read_text())
    assert report["counts"]["produced"] == 1500
    assert report["counts"]["matched"] == 1500
    assert report["counts"]["missing_legacy"] == report["counts"]["missing_candidate"] == 0
    assert report["agreement"]["ari"] >= 0.99
    folder = private_redis_folder(stderr)
    wait_for(lambda: harness_processes_of(folder) == [], 10, "no demo process left")


def test_interrupted_demo_stops_every_process(tmp_path: Path) -> None:
    run = demo("--signals", "200000", "--rate", "2000")
    assert run.stderr is not None
    first_line = run.stderr.readline()
    socket = private_redis_socket(first_line)
    folder = str(socket.parent)
    # redis-server, producer, legacy, candidate, comparator
    wait_for(lambda: len(harness_processes_of(folder)) >= 5, 60, "the demo's processes", [run])
    client = redis.Redis(unix_socket_path=str(socket))
    try:  # interrupt it in full flow: both workers have published results
        wait_for(lambda: min(result_count(client, "legacy"), result_count(client, "candidate")) > 0, 60,
                 "results from both workers", [run])
    finally:
        client.close()
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "interrupted" in stderr
    wait_for(lambda: harness_processes_of(folder) == [], 10, "no demo process left")
