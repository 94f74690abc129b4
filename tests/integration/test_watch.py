"""`harness watch` under a real pseudo-terminal (tmux): real workers and comparator on a real redis-server."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.partitions import all_partitions
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from harness.watch import Collector
from tests.support.processes import ROOT, start_harness, start_worker, stop, wait_for

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


class Terminal:
    """One tmux session on a private server: run a command in a 100x40 pane, read its screen, type keys."""

    def __init__(self, folder: Path, command: str) -> None:
        config = folder / "tmux.conf"
        config.write_text("set -g remain-on-exit on\n")
        # A private tmux server (-L): never the user's own sessions; a short name, as socket paths are limited.
        self._tmux = ["tmux", "-L", f"harness-watch-{os.getpid()}", "-f", str(config)]
        self._run("new-session", "-d", "-s", "watch", "-x", "100", "-y", "40", command)

    def _run(self, *args: str) -> str:
        return subprocess.run([*self._tmux, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "watch")

    def show(self, fmt: str) -> str:
        return self._run("display-message", "-p", "-t", "watch", fmt).strip()

    def keys(self, *names: str) -> None:
        self._run("send-keys", "-t", "watch", *names)

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True)


def worker_cells(screen: str, worker: str) -> list[str] | None:
    """The cells of a worker's row: name, state, rate/s, lag (entries and seconds), heartbeat, dead letters, errors."""
    for line in screen.splitlines():
        if line.split()[:1] == [worker]:
            return line.split()
    return None


def rate_shown(screen: str, worker: str) -> float:
    cells = worker_cells(screen, worker)
    try:
        return float(cells[2]) if cells else 0.0
    except ValueError:  # a dash: no rate measured yet
        return 0.0


def pairs_shown(screen: str) -> int | None:
    found = re.search(r"^\s*overall\s+([\d,]+)\s", screen, re.MULTILINE)
    return int(found.group(1).replace(",", "")) if found else None


@pytest.fixture()
def pipeline(redis_url: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [start_worker("legacy", redis_url, log=tmp_path / "legacy.log"),
                 start_worker("candidate", redis_url, log=tmp_path / "candidate.log"),
                 start_harness(["comparator", "--redis-url", redis_url, "--checkpoint", "0.1"],
                               log=tmp_path / "comparator.log")]
    yield processes
    for process in processes:
        stop(process)


@needs_tmux
def test_watch_shows_workers_and_agreement_updating_and_exits_cleanly_on_ctrl_c(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path, pipeline: list[subprocess.Popen[bytes]]) -> None:
    publish_signals(redis_client, generate_signals(200, seed=1, samples=100), keys.DEFAULT_INPUT_STREAM)
    watch = shlex.join([sys.executable, "-m", "harness", "watch", "--redis-url", redis_url, "--interval", "0.3"])
    # The shell stays after watch exits, so the screen shows its exit status and the cursor it left.
    command = f"cd {shlex.quote(str(ROOT))} && PYTHONPATH=. {watch}; echo \"watch exited with $?\"; sleep 600"
    terminal = Terminal(tmp_path, command)
    try:
        wait_for(lambda: pairs_shown(terminal.screen()) == 200, what="200 pairs on screen", processes=pipeline)
        screen = terminal.screen()
        for worker in ("legacy", "candidate"):
            cells = worker_cells(screen, worker)
            assert cells is not None and cells[1] == "running", screen
            assert cells[-2:] == ["0", "0"], screen  # no dead letters, no errors
        assert "experiment default" in screen and "primary none" in screen and "epoch 0" in screen
        assert "candidate agrees with legacy" in screen  # the report's headline
        assert terminal.show("#{cursor_flag}") == "0"  # the live view hides the cursor while it draws

        # New input: the rate shows the results arriving, and the agreement counts them.
        publish_signals(redis_client, generate_signals(300, seed=2, samples=100), keys.DEFAULT_INPUT_STREAM,
                        rate=150)
        wait_for(lambda: rate_shown(terminal.screen(), "legacy") > 0,
                 what="a legacy rate above 0", processes=pipeline)
        wait_for(lambda: pairs_shown(terminal.screen()) == 500, what="500 pairs on screen", processes=pipeline)

        terminal.keys("C-c")
        wait_for(lambda: "watch exited with" in terminal.screen(), what="watch to exit")
        screen = terminal.screen()
        assert "watch exited with 0" in screen, screen
        assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen
        assert terminal.show("#{cursor_flag}") == "1"  # the terminal got its cursor back
    finally:
        terminal.close()


def test_a_snapshot_says_why_when_redis_cannot_be_reached(tmp_path: Path) -> None:
    client = redis.Redis(unix_socket_path=str(tmp_path / "nobody.sock"), socket_timeout=1)
    where = "unix://" + str(tmp_path / "nobody.sock")
    snapshot = Collector(client, where, {"legacy": "legacy", "candidate": "candidate"}).collect()
    assert snapshot.problem is not None and snapshot.problem.startswith(f"cannot read Redis at {where}")
    assert snapshot.workers == () and snapshot.agreement == ()


def test_once_prints_one_snapshot_of_a_worker_without_a_comparison(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.hset(keys.heartbeat_key("legacy"), mapping={"state": "running", "last_seen_ms": 1})
    redis_client.xadd(keys.dead_letter_stream("legacy"), {"reason": "bad"})
    redis_client.set(keys.dead_letters_dropped_key("legacy"), 4)
    result = CliRunner().invoke(cli, ["watch", "--once", "--redis-url", redis_url], terminal_width=100)
    assert result.exit_code == 0, result.output
    legacy = worker_cells(result.output, "legacy")
    assert legacy is not None and legacy[1] == "running" and legacy[-2:] == ["5", "—"]  # 1 kept + 4 trimmed
    assert worker_cells(result.output, "candidate") == ["candidate", "no", "heartbeat", "—", "—", "—", "0", "—"]
    assert "no comparison in Redis" in result.output


def test_once_adds_up_a_workers_partitions(redis_url: str, redis_client: redis.Redis) -> None:
    """P = 2: lag, dead letters and results of both partitions add up; the newest partition's heartbeat shows."""
    first, second = all_partitions(2)
    for part, state, seen_ms in ((first, "idle", 1), (second, "running", 2)):
        beat = {"state": state, "last_seen_ms": seen_ms}
        redis_client.hset(keys.scoped(keys.heartbeat_key("legacy"), part), mapping=beat)
    for part, entries in ((first, 3), (second, 2)):
        stream = keys.scoped(keys.DEFAULT_INPUT_STREAM, part)
        for _ in range(entries):
            redis_client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"})
        redis_client.xgroup_create(stream, "legacy", id="0")
        redis_client.xadd(keys.scoped(keys.dead_letter_stream("legacy"), part), {"reason": "bad"})
    redis_client.set(keys.scoped(keys.dead_letters_dropped_key("legacy"), second), 4)
    partitioned = CliRunner().invoke(cli, ["watch", "--once", "--redis-url", redis_url, "--partitions", "2"],
                                     terminal_width=100)
    assert partitioned.exit_code == 0, partitioned.output
    legacy = worker_cells(partitioned.output, "legacy")
    assert legacy is not None and legacy[1] == "running", partitioned.output
    assert legacy[3] == "5", "3 + 2 entries not yet delivered"
    assert legacy[-2:] == ["6", "—"], "1 + 1 dead letters kept, 4 trimmed"
    alone = CliRunner().invoke(cli, ["watch", "--once", "--redis-url", redis_url], terminal_width=100)
    unpartitioned = worker_cells(alone.output, "legacy")
    assert unpartitioned is not None and unpartitioned[1:3] == ["no", "heartbeat"] and unpartitioned[-2] == "0", \
        "without --partitions, only the (empty) unpartitioned keys are read"
