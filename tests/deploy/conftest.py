"""Fixtures for the deployment tests: the Docker engine, the harness image, and tools beside pytest."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# The base image: harness-base:bookworm (docker/build-base-image.sh, no image registry needed) unless
# HARNESS_TEST_BASE_IMAGE names another, e.g. python:3.11-slim where a registry is reachable.
BASE_IMAGE = os.environ.get("HARNESS_TEST_BASE_IMAGE", "harness-base:bookworm")
# HARNESS_TEST_IMAGE: use this already built harness image instead of building harness:e2e.
TEST_IMAGE = os.environ.get("HARNESS_TEST_IMAGE", "harness:e2e")


def tool(name: str) -> str | None:
    """`name` from this interpreter's environment first (a venv's ansible), then from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def tool_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(args: list[str], timeout: float, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args[:6])}... exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        from docker.client import DockerClient

        client = DockerClient.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}); docker/ci-setup.sh installs and starts one")
    return client


@pytest.fixture(scope="session")
def harness_image(docker_client: Any) -> str:
    """The harness image built from this checkout (base image first, if it is missing)."""
    from docker.errors import ImageNotFound

    if "HARNESS_TEST_IMAGE" in os.environ:
        docker_client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    try:
        docker_client.images.get(BASE_IMAGE)
    except ImageNotFound:
        if not BASE_IMAGE.startswith("harness-base:"):
            pytest.skip(f"base image {BASE_IMAGE} is not on this engine and no registry is assumed")
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            pytest.skip(f"base image {BASE_IMAGE} missing; building it needs root and debootstrap")
        run(["bash", str(REPO / "docker/build-base-image.sh"), BASE_IMAGE], timeout=900)
    run(["bash", str(REPO / "docker/build-image.sh"), TEST_IMAGE], timeout=900,
        env=tool_env(BASE_IMAGE=BASE_IMAGE, PIP=f"{sys.executable} -m pip"))
    return TEST_IMAGE


def other_legacy_containers(docker_client: Any, stack_label: str, stack: str) -> list[str]:
    """Legacy containers of other stacks: `--stop-with docker` finds workers by the harness.worker
    label alone, so a cutover here would stop those too."""
    found = docker_client.containers.list(filters={"label": "harness.worker=legacy"})
    return [c.name for c in found if c.labels.get(stack_label) != stack]
