"""`harness report --format html` from a real run, opened in headless Chromium: no console error, every plot drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOTS = 6  # agreement series, latency CDF, contingency, split/merge map, error divergence, sample curves
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=8000"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    return done


def browse(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROMIUM), *BROWSER_FLAGS, "--enable-logging=stderr", "--v=0", *flags,
                           page.as_uri()], text=True, capture_output=True, timeout=120)


@needs_chromium
def test_the_html_report_opens_offline_with_every_plot_and_no_console_error(redis_url: str, tmp_path: Path) -> None:
    harness("demo", "--signals", "1500", "--candidate-env", "HARNESS_CANDIDATE_CENTROID=mean", "--redis-url", redis_url)
    page = tmp_path / "report.html"
    harness("report", "--redis-url", redis_url, "--format", "html", "--output", str(page))
    text = page.read_text()
    assert "candidate disagrees with legacy" in text
    assert not re.search(r"<script[^>]+src=", text), "the page must not fetch anything"
    loaded = browse(page, "--dump-dom")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    # plotly marks each div it has drawn into with js-plotly-plot; a failed plot keeps the bare div
    assert len(re.findall(r'class="plotly-graph-div js-plotly-plot"', loaded.stdout)) == PLOTS
    assert "samples not available" not in loaded.stdout  # the input stream still holds every signal
    shot = tmp_path / "report.png"
    taken = browse(page, "--window-size=1280,5200", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 50_000, taken.stderr[-2000:]
    print(f"screenshot of the HTML report: {shot}")


def test_html_needs_an_output_file(redis_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "harness", "report", "--redis-url", redis_url, "--format", "html"],
                          cwd=ROOT, text=True, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "--output FILE" in done.stderr
