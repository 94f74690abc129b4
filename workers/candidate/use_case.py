"""The ClusterSignal use case: allocate each signal to a cluster and publish the outcome. No I/O."""

from __future__ import annotations

from collections.abc import Sequence

from harness.contracts import DEFAULT_LABEL
from workers.candidate.domain.model import ClusterWork, PreparedSignal, SignalClustered, SignalReceived
from workers.candidate.ports import (
    ClusterIdGenerator,
    ClusterRepository,
    SignalClusteredPublisher,
    SignalClustering,
)


class ClusterSignal:
    def __init__(
        self,
        publisher: SignalClusteredPublisher,
        clustering: SignalClustering,
        repo: ClusterRepository,
        ids: ClusterIdGenerator,
    ) -> None:
        self._publisher = publisher
        self._clustering = clustering
        self._repo = repo
        self._ids = ids

    def handle_batch(self, signals: Sequence[SignalReceived]) -> None:
        """Publishes exactly one event per signal, in order, and commits the batch's state once.

        If the batch fails as a whole, its state changes are rolled back before the error propagates,
        so the runtime can safely retry its signals one by one.
        """
        try:
            devices = {signal.meta.device_id for signal in signals}
            batch = self._clustering.prepare(signals, {device: self._repo.get_reference(device) for device in devices})
            for device_id, reference in batch.references.items():
                self._repo.set_reference(device_id, reference)
            works: dict[str, ClusterWork] = {}
            for signal in batch.signals:
                try:
                    event = self.handle(signal, works)
                except Exception as exc:  # a bug on one signal must not cost the others their outcome
                    event = SignalClustered.failed(signal.signal_id, signal.device_id, exc)
                self._publisher.publish(event)
            for work in works.values():
                for cluster in work.changed():
                    self._repo.save_cluster(cluster)
            self._repo.commit()
        except BaseException:
            self._repo.rollback()
            raise

    def handle(self, signal: PreparedSignal, works: dict[str, ClusterWork]) -> SignalClustered:
        """The signal's outcome; an anomaly joins or founds a cluster in the works of its scope."""
        device_id, anomaly = signal.device_id, signal.profile
        if signal.decline_reason is not None:
            return SignalClustered.declined(signal.signal_id, device_id, signal.decline_reason)
        if anomaly is None:
            return SignalClustered(signal.signal_id, device_id, DEFAULT_LABEL)
        scope = self._clustering.scope_of(device_id)
        work = works.get(scope)
        if work is None:
            work = works[scope] = self._clustering.open(self._repo.get_clusters(scope))
        index = self._clustering.match(anomaly, work)
        if index is not None:
            return SignalClustered(signal.signal_id, device_id, work.join(index, anomaly))
        label = self._ids.next_label(scope, len(work) + 1)
        work.found(label, anomaly)
        return SignalClustered(signal.signal_id, device_id, label, True)
