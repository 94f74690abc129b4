"""The face the worker runtime sees: a ClusteringAlgorithm whose batches run the ClusterSignal use case."""

from __future__ import annotations

from collections.abc import Sequence

from harness.clustering import Assignment
from harness.contracts import DEFAULT_LABEL
from workers.candidate.adapters.publisher import CollectingPublisher
from workers.candidate.domain.model import BatchClustered, SignalReceived
from workers.candidate.use_case import ClusterSignal

CACHED_LABELS = 10_000  # Assignments kept for reuse; the cache starts over when it is full


class CandidateAlgorithm:
    replay_safe = True  # ClusterSignal rolls its repository back when a batch raises

    def __init__(self, use_case: ClusterSignal, publisher: CollectingPublisher, model_version: str) -> None:
        self._use_case = use_case
        self._publisher = publisher
        self.model_version = model_version
        self._assignments = Assignments()

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        """Raises only if the batch's state cannot be committed; the runtime then retries the batch."""
        self._publisher.take()  # nothing left over from a batch that raised half-way
        self._use_case.handle_batch(signals)
        outcomes = self._publisher.take()
        if len(outcomes) != 1 or len(outcomes[0].signals) != len(signals):
            raise RuntimeError(f"{len(outcomes)} outcomes for one batch of {len(signals)} signals")
        return self._assignments.of(outcomes[0])


class Assignments:
    """A batch's outcome as Assignments, sharing one immutable Assignment per label: a normal signal,
    or one that joins an existing cluster, costs no new object."""

    def __init__(self) -> None:
        self._default = Assignment.clustered(DEFAULT_LABEL)
        self._joined: dict[str, Assignment] = {}

    def of(self, outcome: BatchClustered) -> list[Assignment]:
        assignments = [self._default] * len(outcome.signals)
        joined, new = self._joined, outcome.new
        if len(joined) > CACHED_LABELS:
            joined.clear()
        for index, label in outcome.labels.items():
            if index in new:
                assignments[index] = Assignment.clustered(label, True)
            elif (assignment := joined.get(label)) is not None:
                assignments[index] = assignment
            else:
                assignments[index] = joined[label] = Assignment.clustered(label)
        for index, reason in outcome.declined.items():
            assignments[index] = Assignment.unclustered(reason)
        for index, (error_type, message) in outcome.failed.items():
            assignments[index] = Assignment.error(error_type or "Exception", message)
        return assignments
