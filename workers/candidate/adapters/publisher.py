"""A publisher that collects events; the runtime-facing adapter drains it after each batch."""

from __future__ import annotations

from workers.candidate.domain.model import SignalClustered
from workers.candidate.ports import SignalClusteredPublisher


class CollectingPublisher(SignalClusteredPublisher):
    def __init__(self) -> None:
        self.events: list[SignalClustered] = []

    def publish(self, event: SignalClustered) -> None:
        self.events.append(event)

    def drain(self) -> list[SignalClustered]:
        events, self.events = self.events, []
        return events
