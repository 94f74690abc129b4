"""The SDK contract: what a clustering algorithm implements to be hosted by the worker runtime.

The runtime owns I/O (reading, decoding, publishing, acking); an algorithm only turns a batch
of decoded signals into one `Assignment` each, in order. What the algorithm may assume:

- `assign_batch` is called once per batch, with signals in input order, and never again for the
  same signals, unless the algorithm declares `replay_safe = True` (it is stateless, or rolls its
  state back when a batch raises). A learner never silently learns a signal twice.
- When `assign_batch` raises: a replay-safe algorithm's batch is retried one signal at a time, so
  only the failing signal gets an error result; any other algorithm's batch gets one error result
  per signal, and, if it keeps snapshots, its state is restored to before the batch.
- Optional state hooks `snapshot() -> bytes` and `restore(bytes)`: the runtime persists the
  snapshot with every commit, atomically with the batch's acks, under the worker's model
  version; a restarted worker restores it and resumes exactly where the last commit left it.
  The stored state is tied to `model_version`: a worker started with another version refuses to
  start unless told `--reset-state` (then it starts fresh).
- An error from the store inside `assign_batch` (the algorithm's own Redis state) is not a model
  error: nothing is published; the batch is retried once the store answers, after restoring the
  last snapshot when there is one. An algorithm that keeps state in the store without snapshots
  should write it atomically per batch (the candidate does), or it may relearn part of a batch.
- `model_version` names the algorithm and its hyperparameters (harness.hyperparameters hashes them in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from harness.contracts import DEFAULT_LABEL, Outcome, SignalReceived
from harness.partitions import Partition


@dataclass(frozen=True)
class Assignment:
    outcome: Outcome
    label: str | None = None
    is_new_cluster: bool = False
    error_type: str | None = None
    error_message: str | None = None

    @staticmethod
    def clustered(label: str, is_new_cluster: bool = False) -> Assignment:
        return Assignment("clustered", label, is_new_cluster)

    @staticmethod
    def unclustered(reason: str) -> Assignment:
        return Assignment("unclustered", None, False, "declined", reason)

    @staticmethod
    def error(error_type: str, message: str) -> Assignment:
        return Assignment("error", None, False, error_type, message)


@runtime_checkable
class ClusteringAlgorithm(Protocol):
    """What the runtime hosts. `assign_batch` returns exactly one Assignment per signal."""

    model_version: str

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]: ...


@runtime_checkable
class Snapshotting(Protocol):
    """The optional state hooks: the whole learned state as bytes, and back."""

    def snapshot(self) -> bytes: ...

    def restore(self, state: bytes) -> None: ...


def is_replay_safe(algorithm: ClusteringAlgorithm) -> bool:
    """Whether `assign_batch` may be called again on signals it has already seen."""
    return getattr(algorithm, "replay_safe", False) is True


def snapshots_of(algorithm: ClusteringAlgorithm) -> Snapshotting | None:
    return algorithm if isinstance(algorithm, Snapshotting) else None


@dataclass(frozen=True)
class WorkerContext:
    """What a factory receives: the worker's name, its Redis client and its environment.

    With a partitioned input (docs/partitions.md) the factory is called once per partition a replica
    owns, and the instance sees only that partition's devices; an algorithm that keeps keys of its own
    names them with `keys.scoped(name, context.partition)`, so they live in the partition's slot."""

    worker_name: str
    redis: Any  # redis.Redis; typed loosely so algorithms need not import redis
    env: dict[str, str]
    partition: Partition | None = None


AlgorithmFactory = Callable[[WorkerContext], ClusteringAlgorithm]


class FunctionAlgorithm:
    """Hosts a plain `fn(signal) -> label | None` unchanged; None means the signal is declined.

    A plain function is taken to be a function of its signal alone, so it is replay-safe."""

    replay_safe = True

    def __init__(self, fn: Callable[[SignalReceived], str | None], model_version: str = "function") -> None:
        self._fn = fn
        self.model_version = model_version
        self._seen: set[str] = set()

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        assignments: list[Assignment] = []
        for signal in signals:
            label = self._fn(signal)
            if label is None:
                assignments.append(Assignment.unclustered("the function returned no label"))
                continue
            is_new = label != DEFAULT_LABEL and label not in self._seen
            self._seen.add(label)
            assignments.append(Assignment.clustered(label, is_new))
        return assignments
