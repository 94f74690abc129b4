"""The face the worker runtime sees: a ClusteringAlgorithm whose batches run the ClusterSignal use case."""

from __future__ import annotations

from collections.abc import Sequence

from harness.clustering import Assignment
from workers.candidate.adapters.publisher import CollectingPublisher
from workers.candidate.domain.model import SignalClustered, SignalReceived
from workers.candidate.use_case import ClusterSignal


class CandidateAlgorithm:
    replay_safe = True  # ClusterSignal rolls its repository back when a batch raises

    def __init__(self, use_case: ClusterSignal, publisher: CollectingPublisher, model_version: str) -> None:
        self._use_case = use_case
        self._publisher = publisher
        self.model_version = model_version

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        """Raises only if the batch's state cannot be committed; the runtime then retries the batch."""
        self._publisher.drain()  # nothing left over from a batch that raised half-way
        self._use_case.handle_batch(signals)
        events = self._publisher.drain()
        if len(events) != len(signals):
            raise RuntimeError(f"{len(events)} outcomes for a batch of {len(signals)} signals")
        return [to_assignment(event) for event in events]


def to_assignment(event: SignalClustered) -> Assignment:
    if event.label is not None:
        return Assignment.clustered(event.label, event.is_new)
    if event.decline_reason is not None:
        return Assignment.unclustered(event.decline_reason)
    return Assignment.error(event.error_type or "Exception", event.error_message or "")
