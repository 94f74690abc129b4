"""The interface a clustering algorithm implements to be hosted by the worker runtime.

The runtime owns I/O (reading, decoding, publishing, acking); an algorithm only turns a batch
of decoded signals into one `Assignment` each, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from harness.contracts import DEFAULT_LABEL, Outcome, SignalReceived


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


@dataclass(frozen=True)
class WorkerContext:
    """What a factory receives: the worker's name, its Redis client and its environment."""

    worker_name: str
    redis: Any  # redis.Redis; typed loosely so algorithms need not import redis
    env: dict[str, str]


AlgorithmFactory = Callable[[WorkerContext], ClusteringAlgorithm]


class FunctionAlgorithm:
    """Hosts a plain `fn(signal) -> label | None` unchanged; None means the signal is declined."""

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
