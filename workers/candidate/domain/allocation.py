"""Online profile clustering: an anomaly joins the most similar cluster of its scope (its device, or
the fleet), or founds a new one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from workers.candidate.domain.features import prepare_batch
from workers.candidate.domain.model import (
    Allocation,
    Cluster,
    ClusterSet,
    PreparedBatch,
    PreparedSignal,
    SignalReceived,
    Vector,
)
from workers.candidate.domain.settings import Centroid, Settings
from workers.candidate.ports import SignalClustering


class ProfileClustering(SignalClustering):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running_mean = settings.centroid is Centroid.MEAN
        self._scale = settings.similarity_scale
        self._defaults: dict[str, Allocation] = {}  # one per device, built once

    def scope_of(self, device_id: str) -> str:
        return self.settings.scope_of(device_id)

    def prepare(self, signals: Sequence[SignalReceived], references: Mapping[str, Vector | None]) -> PreparedBatch:
        return prepare_batch(signals, self.settings, references)

    def allocate(self, signal: PreparedSignal, past: ClusterSet) -> Allocation:
        if signal.decline_reason is not None:
            return Allocation.declined(signal.decline_reason)
        anomaly = signal.profile
        if anomaly is None:
            return self._default(signal.device_id)
        if len(past):
            best, similarity = most_similar(past.representatives, anomaly, self._scale)
            if similarity >= self.settings.similarity_threshold:
                return Allocation.to(past.clusters[best].joined_by(anomaly, self._running_mean))
        return Allocation.new(anomaly)

    def _default(self, device_id: str) -> Allocation:
        allocation = self._defaults.get(device_id)
        if allocation is None:
            allocation = self._defaults[device_id] = Allocation.to(Cluster.default(device_id))
        return allocation


def most_similar(representatives: Vector, anomaly: Vector, scale: float) -> tuple[int, float]:
    """Index and similarity exp(-distance / scale) of the closest row; ties go to the earliest."""
    difference = representatives - anomaly
    squared = np.add.reduce(difference * difference, axis=1)
    best = int(squared.argmin())
    return best, math.exp(-math.sqrt(float(squared[best])) / scale)
