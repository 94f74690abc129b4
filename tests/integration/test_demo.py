"""`harness demo` end to end: real processes on a private redis-server, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import ROOT


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


def private_redis_folder(stderr: str) -> str:
    line = next(line for line in stderr.splitlines() if "private redis-server on" in line)
    return str(Path(line.split("private redis-server on", 1)[1].strip().split()[0]).parent)


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
    time.sleep(0.5)
    assert harness_processes_of(private_redis_folder(stderr)) == []


def test_interrupted_demo_stops_every_process(tmp_path: Path) -> None:
    run = demo("--signals", "200000", "--rate", "2000")
    assert run.stderr is not None
    first_line = run.stderr.readline()
    folder = private_redis_folder(first_line)
    deadline = time.monotonic() + 60
    while len(harness_processes_of(folder)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)  # redis-server, producer, legacy, candidate, comparator
    assert len(harness_processes_of(folder)) >= 5, "the demo's processes should be running"
    time.sleep(2)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "interrupted" in stderr
    time.sleep(1.0)
    assert harness_processes_of(folder) == []
