"""The Redis password never shows in a child's argv, in the logs, or in a Sentry event."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sentry_sdk

from harness.embedded_redis import EmbeddedRedis
from harness.runtime.sentry import init_sentry
from tests.support.processes import ROOT, child_pids

PASSWORD = "pw-" + secrets.token_hex(12)


@pytest.fixture()
def protected_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        with redis.Redis.from_url(server.url) as admin:
            admin.config_set("requirepass", PASSWORD)
        yield f"unix://:{PASSWORD}@{server.socket}"


def descendants(root: int) -> set[int]:
    found, frontier = set(), {root}
    while frontier:
        children = set().union(*(child_pids(pid) for pid in frontier)) - found
        found |= children
        frontier = children
    return found


def cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # it exited meanwhile
        return None


def test_demo_children_get_the_password_through_the_environment_never_argv(protected_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_DEMO_REDIS_URL": protected_url}
    demo = subprocess.Popen([sys.executable, "-m", "harness", "demo", "--signals", "300", "--reset"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict[int, str] = {}
    while demo.poll() is None:  # every child is looked at while alive
        for pid in descendants(demo.pid) - seen.keys():
            line = cmdline(pid)
            if line:
                seen[pid] = line
        time.sleep(0.02)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err.decode(errors="replace")[-2000:]
    harness_children = [line for line in seen.values() if "-m harness" in line]
    assert {"worker legacy", "worker candidate", "comparator", "produce"} <= {
        match.group(1) for line in harness_children
        if (match := re.search(r"-m harness (worker \w+|comparator|produce)", line))
    }
    assert not [line for line in seen.values() if PASSWORD in line]
    assert PASSWORD not in out.decode() + err.decode()
    log_dir = re.search(r"worker logs in (\S+)", err.decode())
    assert log_dir is not None
    logs = list(Path(log_dir.group(1)).glob("*.log"))
    assert len(logs) >= 4
    assert not [log for log in logs if PASSWORD in log.read_text(errors="replace")]


def test_sentry_events_and_breadcrumbs_have_the_url_password_hidden() -> None:
    assert init_sentry("candidate", "v1", dsn="https://public@sentry.invalid/1")
    try:
        options = sentry_sdk.get_client().options
        url = f"redis://harness-candidate:{PASSWORD}@redis:6379/0"
        event = {"exception": {"values": [{"value": f"cannot reach {url}",
                                           "stacktrace": {"frames": [{"vars": {"redis_url": repr(url)}}]}}]}}
        sent = options["before_send"](event, {})
        crumb = options["before_breadcrumb"]({"message": f"connecting to {url}"}, {})
        assert PASSWORD not in repr(sent) + repr(crumb)
        assert "harness-candidate:***@redis:6379" in repr(sent)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)
