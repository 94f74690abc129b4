"""The small interface between the worker runtime and whatever carries its messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Delivery:
    entry_id: str  # the input stream entry id (pub/sub: a local sequence id)
    payload: bytes
    entered_at_ms: float  # when the input entered the transport, on the Redis server's clock
    redelivered: bool = False  # read again from the pending list after a crash or a lost connection
    delivery_count: int = 1


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    payload: bytes
    reason: str
    detail: str
    signal_id: str | None = None


@dataclass(frozen=True)
class CommitBatch:
    """Everything one batch produced; a transport writes it and acks the inputs in one step."""

    acked: Sequence[Delivery]
    results: Sequence[tuple[str, bytes]]  # (input entry id, encoded SignalClustered)
    dead_letters: Sequence[DeadLetter] = field(default_factory=tuple)


@dataclass(frozen=True)
class CommitOutcome:
    is_primary: bool  # this worker held the primary role when the batch was committed
    epoch: int  # the fencing token in force at that moment
    published: int  # results that went to production


class Transport(ABC):
    @abstractmethod
    def read(self, count: int, block_ms: int) -> list[Delivery]:
        """Pending (unacked) deliveries first, after a start or a reconnect; then new ones."""

    @abstractmethod
    def commit(self, batch: CommitBatch) -> CommitOutcome:
        """Write results and dead letters and ack, atomically; the primary also feeds production."""

    @abstractmethod
    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        """For (signal_id, entry_id) pairs: False where the id was already seen on another entry."""

    @abstractmethod
    def server_time_ms(self) -> float: ...

    @abstractmethod
    def reset(self) -> None:
        """Forget the read position after a lost connection, so pending entries are read again."""

    @abstractmethod
    def close(self) -> None: ...
