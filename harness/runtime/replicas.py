"""Replicas of one worker share its partitions: each partition is processed by one live replica at a time.

A replica renews its membership every third of the lease TTL and takes the partitions that fall to
its rank among the live replicas (partition i goes to rank i mod n). It gives up the others (the
runtime finishes the batch in hand, acks it and releases the lease) and starts a runtime for each
new one in a thread. Ownership itself is the partition's lease: a runtime that cannot take it
leaves the partition for the next round, and one that loses it is fenced by the commit script.
When a replica joins, leaves or dies, the partitions move within one lease TTL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.partitions import Partition, all_partitions
from harness.transport.errors import LeaseHeld, TransportError
from harness.transport.membership import Membership

log = logging.getLogger("harness.worker")


def assigned(partitions: int, live_replicas: Sequence[str], replica_id: str) -> set[int]:
    """The partitions that fall to `replica_id` among the live replicas (it is counted even if not yet listed)."""
    ranked = sorted({*live_replicas, replica_id})
    rank, count = ranked.index(replica_id), len(ranked)
    return {index for index in range(partitions) if index % count == rank}


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runner(Protocol):
    """One partition's runtime, running in its own thread."""

    partition: Partition

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    @property
    def finished_idle(self) -> bool: ...


@dataclass(frozen=True)
class ReplicaSettings:
    worker_name: str
    partitions: int
    lease_ttl_s: float
    exit_when_idle: bool = False  # benchmarks and drains: stop once every partition of ours ran dry


class ReplicaSupervisor:
    def __init__(self, settings: ReplicaSettings, membership: Membership, runner_for: Callable[[Partition], Runner],
                 replica_id: str | None = None) -> None:
        self._settings = settings
        self._membership = membership
        self._runner_for = runner_for
        self.replica_id = replica_id or new_replica_id()
        self._partitions = all_partitions(settings.partitions)
        self._runners: dict[int, Runner] = {}
        self._finished: set[int] = set()  # partitions whose runtime ran dry (exit_when_idle)
        self._target: set[int] = set()
        self._stopping = threading.Event()

    @property
    def owned(self) -> set[int]:
        """The partitions with a live runtime in this replica now."""
        return {index for index, runner in self._runners.items() if runner.is_alive()}

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> None:
        log.info("replica started", extra={"worker": self._settings.worker_name, "replica": self.replica_id,
                                           "partitions": self._settings.partitions})
        try:
            while not self._stopping.is_set():
                self.rebalance()
                if self._settings.exit_when_idle and self._target and self._target <= self._finished:
                    break
                self._stopping.wait(self._settings.lease_ttl_s / 3.0)
        finally:
            self._stop_all()
        log.info("replica stopped", extra={"worker": self._settings.worker_name, "replica": self.replica_id})

    def rebalance(self) -> set[int]:
        """One round: renew membership, give up what is no longer ours, start what is. Returns the target."""
        try:
            live = self._membership.renew(self.replica_id, self._settings.lease_ttl_s)
        except TransportError as exc:
            # The store is away or refused: keep what we run (their commits are fenced if a lease moves meanwhile).
            log.warning("membership not renewed: store error; keeping the partitions held", extra={
                "worker": self._settings.worker_name, "error": str(exc)})
            return self._target
        target = assigned(self._settings.partitions, live, self.replica_id)
        if target != self._target:
            log.info("partitions assigned", extra={"worker": self._settings.worker_name, "replica": self.replica_id,
                                                   "replicas": len(live), "partitions": sorted(target)})
        self._target = target
        self._reap()
        for index, runner in self._runners.items():
            if index not in target:
                runner.stop()  # finishes its batch, acks it, releases the lease
        for index in sorted(target - self._runners.keys() - self._finished):
            runner = self._runner_for(self._partitions[index])
            self._runners[index] = runner
            runner.start()
        return target

    def _reap(self) -> None:
        for index, runner in list(self._runners.items()):
            if not runner.is_alive():
                del self._runners[index]
                # Otherwise it ended on a drain (restarted, it idles drained) or an error: start it again.
                if runner.finished_idle and self._settings.exit_when_idle:
                    self._finished.add(index)

    def _stop_all(self) -> None:
        for runner in self._runners.values():
            runner.stop()
        for runner in self._runners.values():
            runner.join()
        self._runners.clear()
        with contextlib.suppress(TransportError):  # else our membership expires by itself
            self._membership.leave(self.replica_id)


class RuntimeThread(threading.Thread):
    """Runs one partition's WorkerRuntime; a lease held by another replica just ends the thread."""

    def __init__(self, partition: Partition, build: Callable[[Partition], RunnableRuntime]) -> None:
        super().__init__(name=f"partition-{partition.index}", daemon=True)
        self.partition = partition
        self._build = build
        self._runtime: RunnableRuntime | None = None
        self._stop_requested = threading.Event()
        self._ran_dry = False

    @property
    def finished_idle(self) -> bool:
        return self._ran_dry

    def run(self) -> None:
        try:
            self._runtime = self._build(self.partition)
            if self._stop_requested.is_set():
                return
            self._runtime.run()
            self._ran_dry = not self._stop_requested.is_set() and not self._runtime.lease_lost
        except LeaseHeld as exc:
            log.info("partition not taken: another replica still holds it", extra={
                "partition": str(self.partition), "error": str(exc)})
        except Exception:
            log.exception("partition runtime failed", extra={"partition": str(self.partition)})

    def stop(self) -> None:
        self._stop_requested.set()
        if self._runtime is not None:
            self._runtime.request_stop()


class RunnableRuntime(Protocol):
    @property
    def lease_lost(self) -> bool: ...

    def run(self) -> object: ...

    def request_stop(self, *_: object) -> None: ...
