"""A publisher that collects outcomes; the runtime-facing adapter takes them after each batch."""

from __future__ import annotations

from workers.candidate.domain.model import BatchClustered, SignalClustered
from workers.candidate.ports import SignalClusteredPublisher


class CollectingPublisher(SignalClusteredPublisher):
    def __init__(self) -> None:
        self.outcomes: list[BatchClustered] = []

    def publish(self, outcome: BatchClustered) -> None:
        self.outcomes.append(outcome)

    def take(self) -> list[BatchClustered]:
        outcomes, self.outcomes = self.outcomes, []
        return outcomes

    def drain(self) -> list[SignalClustered]:
        """What was published since the last call, signal by signal."""
        return [event for outcome in self.take() for event in outcome.events()]
