"""The port between the worker runtime and whatever carries its messages: read, commit, control.

Adapters: Redis Streams (streams.py), Redis pub/sub (pubsub.py) and an in-memory broker with the
same semantics (memory.py) for unit tests and backtests. Every adapter raises the harness's own
errors (transport/errors.py), never its client library's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.transport.errors import TransportError

DEFAULT_LEASE_TTL_S = 10.0  # a dead worker's lease expires after this; a live one renews it every third


class Delivery(NamedTuple):  # a tuple: built once per message, three times faster than a frozen dataclass
    entry_id: str  # the input stream entry id (pub/sub: a local sequence id)
    payload: bytes
    entered_at_ms: float  # when the input entered the transport, on the store's clock
    redelivered: bool = False  # read again from the pending list after a crash or a lost connection
    delivery_count: int = 1


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    payload: bytes  # a capped prefix of the original message (see payload_size and payload_sha256)
    reason: str
    detail: str
    signal_id: str | None = None
    payload_size: int = 0  # the original message's size in bytes
    payload_sha256: str = ""  # of the whole original message, to match a replayed or fixed copy


@dataclass(frozen=True)
class CommitBatch:
    """Everything one batch produced; a transport writes it and acks the inputs in one step."""

    acked: Sequence[Delivery]
    results: Sequence[tuple[str, bytes]]  # (input entry id, encoded SignalClustered), in input order
    dead_letters: Sequence[DeadLetter] = field(default_factory=tuple)
    model_state: bytes | None = None  # the algorithm's snapshot after this batch, stored with the acks


@dataclass(frozen=True)
class CommitOutcome:
    is_primary: bool  # this worker held the primary role when the batch was committed
    epoch: int  # the fencing token in force at that moment
    published: int  # results that went to production
    already_committed: bool = False  # a retried commit whose first attempt had landed: nothing written


@dataclass(frozen=True)
class Backlog:
    """How far this worker's consumer group is behind its input (metrics read it with the heartbeat)."""

    undelivered: int | None  # entries not yet read by the group; None when the store cannot tell
    pending: int  # entries read but not acked yet


@dataclass(frozen=True)
class Heartbeat:
    state: str  # running, drained, stopped, backing-off
    model_version: str
    detail: str = ""


class Transport(ABC):
    """Everything the runtime needs from the outside world; one instance per worker process."""

    @abstractmethod
    def read(self, count: int, block_ms: int) -> list[Delivery]:
        """After a start or reset: this consumer's pending entries ONE AT A TIME, so a message that
        killed the process is retried alone and its neighbours are not blamed; then new entries."""

    def take_read_ahead(self) -> list[Delivery]:
        """Entries a read sent ahead has already delivered to this consumer ([] if none): the runtime
        processes them before it stops, so a polite stop leaves nothing pending."""
        return []

    @abstractmethod
    def commit(self, batch: CommitBatch) -> CommitOutcome:
        """Write results and dead letters and ack, atomically; the primary also feeds production.

        Idempotent: retrying a commit whose reply was lost writes nothing twice. Raises
        TransportFenced when this consumer has lost its lease."""

    @abstractmethod
    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        """For (signal_id, entry_id) pairs: False where the id was already seen on another entry."""

    @abstractmethod
    def server_time_ms(self) -> float:
        """The store's clock, which every host shares."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the read position after a lost connection, so pending entries are read again."""

    def release(self) -> None:
        """Give back what the runtime held of a client it may share with other runtimes (a read's own
        connection): called when a runtime ends; the client stays open."""
        return None  # nothing held by default

    @abstractmethod
    def close(self) -> None: ...

    # --- control: what the cutover and the operator see of, and ask of, a running worker ----------

    @abstractmethod
    def beat(self, heartbeat: Heartbeat) -> None:
        """Publish the worker's heartbeat (state, model version, pid, host)."""

    @abstractmethod
    def drain_requested(self) -> bool:
        """The cutover asks this worker to finish its batch, ack it and exit."""

    @abstractmethod
    def claim_primary_if_unset(self) -> bool:
        """First deployment: make this worker primary (epoch 1) unless roles already exist."""

    @abstractmethod
    def acquire_lease(self, ttl_s: float, wait_s: float) -> int:
        """Become the one live consumer of this worker name; returns the fencing token.

        Waits up to `wait_s` for a dead holder's lease to expire; raises LeaseHeld naming a live holder."""

    @abstractmethod
    def renew_lease(self) -> bool:
        """Extend the lease; False when it was lost (expired and taken, or released)."""

    @abstractmethod
    def release_lease(self) -> None: ...

    @abstractmethod
    def bind_model_version(self, model_version: str, reset: bool) -> bytes | None:
        """Tie the worker's stored state to `model_version`; the snapshot to resume from, if any.

        Raises StateVersionMismatch when the stored state belongs to another version, unless
        `reset`, which deletes the worker's stored state (snapshot and the algorithm's own keys)."""

    def backlog(self) -> Backlog:
        """This worker's backlog on its input; an adapter that cannot tell (pub/sub) says unknown."""
        return Backlog(None, 0)

    def classify(self, exc: BaseException) -> TransportError | None:
        """The harness error an exception raised inside the algorithm stands for, if it is an
        infrastructure error (its own state access hit the store): such a batch is retried, never
        published as a model error."""
        return exc if isinstance(exc, TransportError) else None
