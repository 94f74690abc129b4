"""A throwaway Redis Cluster on loopback (3 masters, one replica each) for tests and benchmarks: master kills,
failover waits."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from harness.embedded_redis import _version, find_redis_server
from harness.supervisor import die_with_parent

MASTERS, REPLICAS_PER_MASTER = 3, 1
SLOTS = 16384
# Short, so that a killed master's replica takes over within about two seconds (Redis's default, 15 s,
# would make every failover test slow); long enough that a busy 2-core machine is not a dead node.
NODE_TIMEOUT_MS = 1500
READY_TIMEOUT_S = 30.0

SlotMap = tuple[tuple[int, int, int], ...]  # (first slot, last slot, master port), sorted


class ClusterUnavailable(Exception):
    """No cluster can be started here (no Redis 7, no redis-cli): a reason to skip, not a failure."""


class WaitTimedOut(RuntimeError):
    """A wait_for condition did not hold in time, or one of the watched processes exited meanwhile."""


@dataclass
class LocalRedisCluster:
    """Six redis-server processes in a temp folder, joined by `redis-cli --cluster create`."""

    server: str
    cli: str
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="harness-cluster-")))
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The seed URL for harness's redis_client: one node; the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> LocalRedisCluster:
        self.ports = [_free_port() for _ in range(MASTERS * (1 + REPLICAS_PER_MASTER))]
        for port in self.ports:
            self._start_node(port)
        wait_for(lambda: all(_answers(port) for port in self.ports), READY_TIMEOUT_S, "the nodes to answer",
                 list(self.processes.values()))
        create = [self.cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                  "--cluster-replicas", str(REPLICAS_PER_MASTER), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=READY_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {(done.stdout + done.stderr)[-2000:]}")
        self.wait_until_ok()
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()  # no persistence: nothing to flush
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def node(self, port: int) -> redis.Redis:
        """A plain client to one node (CLUSTER commands, FLUSHALL on a master)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True)

    def live_ports(self) -> list[int]:
        return [port for port in self.ports if self.processes[port].poll() is None]

    def slot_map(self, port: int | None = None) -> SlotMap:
        """Which master serves which slots, as one node (by default the first live one) sees it."""
        with closing(self.node(port if port is not None else self.live_ports()[0])) as client:
            return _slot_map(client.execute_command("CLUSTER SLOTS"))

    def master_of(self, key: str | bytes) -> int:
        """The port of the master that serves `key`'s slot (its hash tag's, when it has one)."""
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        return next(port for first, last, port in self.slot_map() if first <= slot <= last)

    def masters(self) -> list[int]:
        return sorted({port for _, _, port in self.slot_map()})

    def kill_master_of(self, key: str | bytes) -> int:
        """SIGKILL the master serving `key`; returns its port. Its replica takes over (wait_for_failover)."""
        port = self.master_of(key)
        self.kill(port)
        return port

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def wait_replicated(self, key: str | bytes, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the replicas of `key`'s master hold every write it has taken: Redis replicates
        asynchronously, so only what this returns for survives a failover for sure."""
        port = self.master_of(key)

        def caught_up() -> bool:
            with closing(self.node(port)) as client:
                info = client.info("replication")
            offsets = [v["offset"] for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            return len(offsets) >= REPLICAS_PER_MASTER and min(offsets) >= info["master_repl_offset"]

        wait_for(caught_up, timeout_s, f"the replicas of {port} to catch up")

    def wait_for_failover(self, killed: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until a replica serves every slot `killed` served, and every live node agrees and says ok."""
        wait_for(lambda: self._healthy() and killed not in self.masters(), timeout_s,
                 f"a replica of {killed} to take over")

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins (from its nodes.conf) as a replica of its successor."""
        self._start_node(port)
        self.wait_until_ok()

    def heal(self) -> None:
        """Restart every killed node and wait until all six agree: a test leaves the cluster as it found it."""
        for port in set(self.ports) - set(self.live_ports()):
            self._start_node(port)
        self.wait_until_ok()

    def flush(self) -> None:
        for port in self.masters():
            with closing(self.node(port)) as client:
                client.flushall()

    def wait_until_ok(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_for(self._healthy, timeout_s, "cluster_state:ok on every node, all agreeing",
                 list(self.processes.values()))

    def _healthy(self) -> bool:
        """Every live node says ok, covers all slots, and sees the same masters; each master has a live replica
        once every node is up."""
        try:
            maps = {self.slot_map(port) for port in self.live_ports()}
            states = [_cluster_state(self.node(port)) for port in self.live_ports()]
        except redis.RedisError:
            return False
        if len(maps) != 1 or states != ["ok"] * len(states):
            return False
        (slots,) = maps
        covered = sum(last - first + 1 for first, last, _ in slots)
        all_up = len(self.live_ports()) == len(self.ports)
        return covered == SLOTS and (not all_up or self._replicas_attached())

    def _replicas_attached(self) -> bool:
        """Each master has an online replica and each replica's link is up: a replica that has never
        synchronised does not take over from a dead master."""
        for port in self.live_ports():
            with closing(self.node(port)) as client:
                info = client.info("replication")
            if info["role"] == "master":
                online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                          and v.get("state") == "online"]
                if len(online) < REPLICAS_PER_MASTER:
                    return False
            elif info.get("master_link_status") != "up":
                return False
        return True

    def _start_node(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(exist_ok=True)
        conf = folder / "nodes.conf"  # a restarted node keeps the bus port its peers know it by
        bus_port = _bus_port(conf) if conf.exists() else str(_free_port())
        args = [self.server, "--port", str(port), "--cluster-port", bus_port, "--bind", "127.0.0.1",
                "--dir", str(folder), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", "",
                "--repl-diskless-sync-delay", "0",  # a new replica syncs at once, not after 5 s
                "--daemonize", "no", "--logfile", str(folder / "redis.log")]
        # die_with_parent: a killed test run or benchmark leaves no node behind.
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                preexec_fn=die_with_parent)


@contextmanager
def local_redis_cluster() -> Iterator[LocalRedisCluster]:
    """A started cluster, stopped and removed on exit; ClusterUnavailable when this machine cannot run one."""
    cluster = LocalRedisCluster(*cluster_binaries())
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def cluster_binaries() -> tuple[str, str]:
    """(redis-server, redis-cli) able to form a cluster: Redis 7 or newer, and its own redis-cli."""
    server = find_redis_server()
    version = _version(server)
    if version < (7,):
        shown = ".".join(map(str, version)) or "unknown"
        raise ClusterUnavailable(f"{server} is Redis {shown}; the cluster tests need Redis 7 (cluster-port)")
    sibling = Path(server).parent / "redis-cli"
    cli = str(sibling) if os.access(sibling, os.X_OK) else shutil.which("redis-cli")
    if cli is None:
        raise ClusterUnavailable(f"no redis-cli beside {server} or on PATH: it forms the cluster")
    return server, cli


def _slot_map(reply: list[list[object]]) -> SlotMap:
    return tuple(sorted((int(str(row[0])), int(str(row[1])), int(str(_node_port(row[2])))) for row in reply))


def _node_port(node: object) -> object:
    assert isinstance(node, list | tuple), node
    return node[1]


def _cluster_state(client: redis.Redis) -> str:
    with closing(client):
        info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
        return str(info.get("cluster_state", ""))


def _answers(port: int) -> bool:
    try:
        with closing(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bus_port(nodes_conf: Path) -> str:
    """This node's cluster bus port, from the `myself` line of its nodes.conf (ip:port@busport)."""
    myself = next(line for line in nodes_conf.read_text().splitlines() if "myself" in line.split()[2])
    return myself.split()[1].split("@")[1].split(",")[0]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition",
             processes: Sequence[subprocess.Popen[Any]] = ()) -> None:
    """Poll until predicate() holds; WaitTimedOut on timeout, or at once if one of `processes` exited.
    The tests' wait_for too (tests/support/processes.py)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                raise WaitTimedOut(f"{process.args!r} exited with {process.returncode} while waiting for {what}")
        time.sleep(0.05)
    raise WaitTimedOut(f"timed out after {timeout_s}s waiting for {what}")
