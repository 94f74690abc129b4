"""The Ansible playbooks: syntax and lint everywhere; on a Docker engine, real runs against this
host (connection local) that must converge, and change nothing when run again."""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO, other_legacy_containers, run, tool, tool_env

ANSIBLE = REPO / "ansible"
PLAYBOOKS = ["deploy.yml", "deploy-candidate.yml", "cutover.yml", "rollback.yml"]
INVENTORIES = ["inventory/prod.yml", "inventory/preprod.yml"]
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def ansible_tool(name: str) -> str:
    path = tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install ansible ansible-lint: the test extra)")
    return path


def ansible_env(**extra: str) -> dict[str, str]:
    return tool_env(ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_LOCAL_TEMP=str(Path("/tmp") / "harness-ansible-tmp"), **extra)


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str, inventory: str) -> None:
    proc = run([ansible_tool("ansible-playbook"), "--syntax-check", "-i", inventory, playbook],
               timeout=120, check=False, cwd=ANSIBLE, env=ansible_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_is_clean() -> None:
    proc = run([ansible_tool("ansible-lint"), "--offline", "--nocolor"], timeout=300, check=False,
               cwd=ANSIBLE, env=ansible_env())
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]


# --- real runs against this host's Docker engine -------------------------------------------------


@dataclass(frozen=True)
class AnsibleStack:
    stack: str
    inventory: Path
    extra_vars: tuple[str, ...]
    password: str

    def playbook(self, name: str, *extra: str) -> tuple[dict[str, int], str]:
        """Run `name` against localhost; the PLAY RECAP's counts for localhost, and the output."""
        args = [ansible_tool("ansible-playbook"), "-i", str(self.inventory), name]
        for var in (*self.extra_vars, *extra):
            args += ["-e", var]
        proc = run(args, timeout=600, check=False, cwd=ANSIBLE, env=ansible_env(HARNESS_REDIS_PASSWORD=self.password))
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{name} failed:\n{output[-8000:]}"
        recaps = [m for m in RECAP.finditer(proc.stdout) if m.group(1) == "localhost"]
        assert recaps, f"no PLAY RECAP for localhost in:\n{output[-4000:]}"
        last = recaps[-1]
        counts = {"ok": int(last.group(2)), "changed": int(last.group(3)), "unreachable": int(last.group(4)),
                  "failed": int(last.group(5))}
        return counts, output


def remove_stack(docker_client: Any, stack: str) -> None:
    from docker.errors import NotFound

    for container in docker_client.containers.list(all=True, filters={"label": f"harness.stack={stack}"}):
        container.remove(force=True)
    with contextlib.suppress(NotFound):
        docker_client.networks.get(f"harness-{stack}").remove()
    with contextlib.suppress(NotFound):
        docker_client.volumes.get(f"harness-{stack}-redis-data").remove(force=True)


@pytest.fixture(scope="module")
def ansible_stack(docker_client: Any, harness_image: str, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[AnsibleStack]:
    """A stack deployed once by deploy.yml on this host, under its own name, port and volume."""
    from tests.deploy.conftest import free_port

    ansible_tool("ansible-playbook")
    stack = f"e2e{uuid.uuid4().hex[:8]}"
    inventory = tmp_path_factory.mktemp("ansible") / "localhost.yml"
    inventory.write_text(
        "harness:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    deployed = AnsibleStack(
        stack=stack, inventory=inventory, password=secrets.token_hex(16),
        extra_vars=(f"harness_stack={stack}", f"harness_redis_port={free_port()}", f"harness_image={harness_image}",
                    f"harness_config_dir={tmp_path_factory.mktemp('config')}"),
    )
    try:
        counts, output = deployed.playbook("deploy.yml")
        assert counts["changed"] > 0, output[-4000:]
        yield deployed
    finally:
        remove_stack(docker_client, stack)


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_second_deploy_run_changes_nothing(ansible_stack: AnsibleStack, docker_client: Any) -> None:
    counts, output = ansible_stack.playbook("deploy.yml")
    assert counts["changed"] == 0, output[-6000:]
    running = docker_client.containers.list(filters={"label": f"harness.stack={ansible_stack.stack}"})
    names = sorted(c.name for c in running)
    prefix = f"harness-{ansible_stack.stack}"
    assert names == sorted(f"{prefix}-{s}" for s in ("candidate", "comparator", "legacy", "redis"))
    labels = {c.name: c.labels.get("harness.worker") for c in running}
    assert labels[f"{prefix}-legacy"] == "legacy"
    assert labels[f"{prefix}-candidate"] == "candidate"


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_cutover_and_rollback_playbooks_converge(ansible_stack: AnsibleStack, docker_client: Any) -> None:
    others = other_legacy_containers(docker_client, "harness.stack", ansible_stack.stack)
    if others:
        pytest.skip(f"other harness stacks run on this engine ({', '.join(others)}); a cutover would stop them")
    prefix = f"harness-{ansible_stack.stack}"

    counts, output = ansible_stack.playbook(
        "cutover.yml", "harness_cutover_force=true", "harness_cutover_reason=deploy test")
    assert counts["changed"] > 0, output[-4000:]
    assert docker_client.containers.get(f"{prefix}-legacy").status == "exited"
    assert docker_client.containers.get(f"{prefix}-candidate").status == "running"
    for playbook in ("cutover.yml", "deploy.yml"):  # cut over: both leave legacy stopped
        counts, output = ansible_stack.playbook(playbook)
        assert counts["changed"] == 0, f"{playbook}:\n{output[-6000:]}"
    assert docker_client.containers.get(f"{prefix}-legacy").status == "exited"

    counts, output = ansible_stack.playbook("rollback.yml")
    assert counts["changed"] > 0, output[-4000:]
    assert docker_client.containers.get(f"{prefix}-legacy").status == "running"
    for playbook in ("rollback.yml", "deploy.yml"):
        counts, output = ansible_stack.playbook(playbook)
        assert counts["changed"] == 0, f"{playbook}:\n{output[-6000:]}"
