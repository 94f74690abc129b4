"""An in-memory broker with the Redis Streams transport's semantics, for unit tests and backtests.

Like Dramatiq's stub broker: consumer groups with pending entries and delivery counts, atomic
commits with production fencing and an idempotent retry, dead letters, dedupe, heartbeat, drain
and leases. Faults are injected with `fail_next`. A "crash" is a new transport on the same broker.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.transport.base import (
    Backlog,
    CommitBatch,
    CommitOutcome,
    DeadLetter,
    Delivery,
    Heartbeat,
    Transport,
)
from harness.transport.control import holder_identity
from harness.transport.errors import LeaseHeld, StateVersionMismatch, TransportError, TransportFenced
from harness.transport.membership import Membership
from harness.transport.replies import parse_entry_id


@dataclass
class _Group:
    next_index: int = 0  # the next stream position this group has not been given yet
    pending: dict[str, int] = field(default_factory=dict)  # entry id -> times delivered, in stream order


@dataclass
class _Lease:
    token: int
    holder: str
    expires_at: float


@dataclass(frozen=True)
class ProductionEntry:
    entry_id: str
    payload: bytes
    worker: str
    epoch: int


class InMemoryBroker:
    def __init__(self, clock_ms: Callable[[], float] | None = None) -> None:
        self.clock_ms = clock_ms or (lambda: time.time() * 1000.0)
        self.lock = threading.RLock()
        self.streams: dict[str, list[tuple[str, bytes, float]]] = {}
        self.groups: dict[tuple[str, str], _Group] = {}
        self.results: dict[str, list[tuple[str, bytes]]] = {}
        self.dead_letters: dict[str, list[DeadLetter]] = {}
        self.production: list[ProductionEntry] = []
        self.roles: dict[str, str] = {}
        self.seen: dict[tuple[str, str], str] = {}
        self.heartbeats: dict[str, Heartbeat] = {}
        self.drain: set[str] = set()
        self.leases: dict[str, _Lease] = {}
        self.last_tokens: dict[str, int] = {}  # per worker: the last lease token given (Redis's token counter)
        self.model_states: dict[str, tuple[str, bytes | None]] = {}  # worker -> (model version, snapshot)
        self._tokens = itertools.count(1)
        self._sequence = itertools.count(1)
        self._faults: list[tuple[str, TransportError]] = []

    def append(self, stream: str, payload: bytes, entry_id: str | None = None,
               entered_at_ms: float | None = None) -> str:
        with self.lock:
            now = self.clock_ms()
            entry_id = entry_id or f"{int(now)}-{next(self._sequence)}"
            self.streams.setdefault(stream, []).append((entry_id, payload, now if entered_at_ms is None
                                                        else entered_at_ms))
            return entry_id

    def fail_next(self, operation: str, error: TransportError, times: int = 1) -> None:
        """The next `times` calls of `operation` (read, commit, first_sightings, ...) raise `error`."""
        with self.lock:
            self._faults.extend([(operation, error)] * times)

    def check_fault(self, operation: str) -> None:
        with self.lock:
            for index, (name, error) in enumerate(self._faults):
                if name == operation:
                    del self._faults[index]
                    raise error

    def pending(self, stream: str, group: str) -> dict[str, int]:
        with self.lock:
            return dict(self.groups.get((stream, group), _Group()).pending)


class InMemoryTransport(Transport):
    def __init__(self, broker: InMemoryBroker, worker: str, input_stream: str = "input") -> None:
        self._broker = broker
        self._worker = worker
        self._stream = input_stream
        self._reading_pending = True  # a new transport is a restart: pending entries come first
        self._pending_after = ""
        self._lease_value = ""
        self._lease_ttl_s = 0.0

    def _group(self) -> _Group:
        return self._broker.groups.setdefault((self._stream, self._worker), _Group())

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        broker = self._broker
        with broker.lock:
            broker.check_fault("read")
            group = self._group()
            entries = broker.streams.get(self._stream, [])
            if self._reading_pending:
                delivery = self._next_pending(group, entries)
                if delivery is not None:
                    return [delivery]
                self._reading_pending = False
            fresh = entries[group.next_index:group.next_index + count]
            group.next_index += len(fresh)
            for entry_id, _, _ in fresh:
                group.pending[entry_id] = 1
            return [Delivery(entry_id, payload, entered) for entry_id, payload, entered in fresh]

    def _next_pending(self, group: _Group, entries: list[tuple[str, bytes, float]]) -> Delivery | None:
        later = [e for e in group.pending if not self._pending_after
                 or parse_entry_id(e) > parse_entry_id(self._pending_after)]
        if not later:
            return None
        entry_id = later[0]
        group.pending[entry_id] += 1
        self._pending_after = entry_id
        payload, entered = next((p, t) for e, p, t in entries if e == entry_id)
        return Delivery(entry_id, payload, entered, True, group.pending[entry_id])

    def commit(self, batch: CommitBatch) -> CommitOutcome:
        broker = self._broker
        with broker.lock:
            broker.check_fault("commit")
            lease = broker.leases.get(self._worker)
            if self._lease_value and (lease is None or lease.expires_at < time.monotonic()
                                      or f"{lease.token} {lease.holder}" != self._lease_value):
                raise TransportFenced(f"FENCED worker {self._worker} no longer holds its lease")
            is_primary = broker.roles.get("primary") == self._worker
            epoch = int(broker.roles.get("epoch", "0"))
            group = self._group()
            if batch.acked and batch.acked[0].entry_id not in group.pending:
                return CommitOutcome(is_primary, epoch, 0, already_committed=True)
            published = self._write(batch, is_primary, epoch)
            for delivery in batch.acked:
                group.pending.pop(delivery.entry_id, None)
            if batch.model_state is not None and batch.acked:
                version, _ = broker.model_states.get(self._worker, ("", None))
                broker.model_states[self._worker] = (version, batch.model_state)
            return CommitOutcome(is_primary, epoch, published)

    def _write(self, batch: CommitBatch, is_primary: bool, epoch: int) -> int:
        broker = self._broker
        broker.results.setdefault(self._worker, []).extend(batch.results)
        broker.dead_letters.setdefault(self._worker, []).extend(batch.dead_letters)
        watermark = broker.roles.get("watermark", "0-0")
        published = 0
        for entry_id, payload in batch.results:
            if is_primary and parse_entry_id(entry_id) > parse_entry_id(watermark):
                broker.production.append(ProductionEntry(entry_id, payload, self._worker, epoch))
                broker.roles["watermark"] = entry_id
                published += 1
        return published

    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        broker = self._broker
        with broker.lock:
            broker.check_fault("first_sightings")
            verdicts = []
            for signal_id, entry_id in ids:
                first = broker.seen.setdefault((self._worker, signal_id), entry_id)
                verdicts.append(first == entry_id)
            return verdicts

    def backlog(self) -> Backlog:
        broker = self._broker
        with broker.lock:
            broker.check_fault("backlog")
            group = self._group()
            return Backlog(len(broker.streams.get(self._stream, [])) - group.next_index, len(group.pending))

    def server_time_ms(self) -> float:
        self._broker.check_fault("server_time_ms")
        return self._broker.clock_ms()

    def reset(self) -> None:
        self._reading_pending = True
        self._pending_after = ""

    def close(self) -> None:
        self.release_lease()

    def beat(self, heartbeat: Heartbeat) -> None:
        self._broker.check_fault("beat")
        with self._broker.lock:
            self._broker.heartbeats[self._worker] = heartbeat

    def drain_requested(self) -> bool:
        with self._broker.lock:
            return self._worker in self._broker.drain

    def claim_primary_if_unset(self) -> bool:
        with self._broker.lock:
            if "primary" in self._broker.roles:
                return False
            self._broker.roles.update(primary=self._worker, epoch="1", watermark="0-0")
            return True

    def acquire_lease(self, ttl_s: float, wait_s: float) -> int:
        deadline = time.monotonic() + wait_s
        while True:
            with self._broker.lock:
                lease = self._broker.leases.get(self._worker)
                if lease is None or lease.expires_at < time.monotonic():
                    token = next(self._broker._tokens)
                    holder = f"{holder_identity()} #{id(self)}"  # one process may host several in tests
                    self._broker.leases[self._worker] = _Lease(token, holder, time.monotonic() + ttl_s)
                    self._broker.last_tokens[self._worker] = token
                    self._lease_value = f"{token} {holder}"
                    self._lease_ttl_s = ttl_s
                    return token
            if time.monotonic() >= deadline:
                raise LeaseHeld(f"worker {self._worker!r} is already running on {lease.holder}")
            time.sleep(min(0.05, wait_s))

    def renew_lease(self) -> bool:
        with self._broker.lock:
            lease = self._broker.leases.get(self._worker)
            live_and_not_ours = (lease is not None and lease.expires_at >= time.monotonic()
                                 and f"{lease.token} {lease.holder}" != self._lease_value)
            if not self._lease_value or live_and_not_ours:
                return False
            token, _, holder = self._lease_value.partition(" ")
            if self._broker.last_tokens.get(self._worker) != int(token):
                return False  # taken (and maybe released) by another copy since: as the Redis adapter refuses
            # Expired and untaken: re-establish it, as the Redis adapter does.
            self._broker.leases[self._worker] = _Lease(int(token), holder, time.monotonic() + self._lease_ttl_s)
            return True

    def release_lease(self) -> None:
        with self._broker.lock:
            lease = self._broker.leases.get(self._worker)
            if lease is not None and f"{lease.token} {lease.holder}" == self._lease_value:
                del self._broker.leases[self._worker]
            self._lease_value = ""

    def bind_model_version(self, model_version: str, reset: bool) -> bytes | None:
        with self._broker.lock:
            stored = self._broker.model_states.get(self._worker)
            if stored is not None and stored[0] != model_version and not reset:
                raise StateVersionMismatch(f"worker {self._worker!r} has state from model version {stored[0]!r}, "
                                           f"not {model_version!r}")
            snapshot = None if reset or stored is None else stored[1]
            self._broker.model_states[self._worker] = (model_version, snapshot)
            return snapshot


class InMemoryMembership(Membership):
    """The replicas' membership on a local clock, for unit tests of the replica supervisor."""

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._expiries: dict[str, float] = {}
        self._lock = threading.Lock()

    def renew(self, replica_id: str, ttl_s: float) -> list[str]:
        with self._lock:
            now = self._clock_s()
            self._expiries[replica_id] = now + ttl_s
            self._expiries = {member: expiry for member, expiry in self._expiries.items() if expiry > now}
            return sorted(self._expiries)

    def leave(self, replica_id: str) -> None:
        with self._lock:
            self._expiries.pop(replica_id, None)
