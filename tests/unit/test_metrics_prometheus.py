"""The compose stack's Prometheus config and alert rules: promtool checks and unit-tests them, and every
metric they (and docs/metrics.md) name is one the worker or the comparator exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from harness.metrics.comparator import ComparatorMetrics
from harness.metrics.worker import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's `prometheus`; "
                                                            ".ci/run installs it)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS)


@needs_promtool
def test_promtool_accepts_the_config_and_its_rule_files() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 rules found" in done.stdout


@needs_promtool
def test_each_alert_fires_when_it_should_and_not_before() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def exported() -> tuple[set[str], set[str]]:
    """(the metrics as named in PromQL and the docs, every name a query may use: with _bucket, _count, _sum)."""
    registry = CollectorRegistry()
    WorkerMetrics("w", "m", registry)
    ComparatorMetrics(["legacy", "candidate"], registry)
    families = {family.name + ("_total" if family.type == "counter" else "") for family in registry.collect()}
    samples = {sample.name for family in registry.collect() for sample in family.samples}
    return families, families | {name for name in samples if not name.endswith("_created")}


def test_every_metric_the_alerts_and_the_docs_name_is_exported() -> None:
    _, names = exported()
    for source in (PROMETHEUS / "alerts.yml", ROOT / "docs" / "metrics.md"):
        named = set(re.findall(r"\bharness_(?:worker|comparator)_[a-z0-9_]+", source.read_text()))
        assert named, source
        assert named <= names, f"{source.name} names metrics nobody exports: {sorted(named - names)}"


def test_the_docs_list_every_exported_metric() -> None:
    families, _ = exported()
    documented = (ROOT / "docs" / "metrics.md").read_text()
    assert {name for name in families if f"| `{name}` |" not in documented} == set()
