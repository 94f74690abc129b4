"""Online profile clustering: an anomaly joins the most similar cluster of its scope (its device, or
the fleet), or founds a new one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from workers.candidate.domain.features import prepare_batch
from workers.candidate.domain.model import ClusterSet, ClusterWork, PreparedBatch, SignalReceived, Vector
from workers.candidate.domain.settings import Centroid, Settings
from workers.candidate.ports import SignalClustering


class ProfileClustering(SignalClustering):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running_mean = settings.centroid is Centroid.MEAN
        self._scale = settings.similarity_scale
        self._threshold = settings.similarity_threshold

    def scope_of(self, device_id: str) -> str:
        return self.settings.scope_of(device_id)

    def prepare(self, signals: Sequence[SignalReceived], references: Mapping[str, Vector | None]) -> PreparedBatch:
        return prepare_batch(signals, self.settings, references)

    def open(self, past: ClusterSet) -> ClusterWork:
        return ClusterWork(past, self._running_mean)

    def match(self, anomaly: Vector, work: ClusterWork) -> int | None:
        if not len(work):
            return None
        best, similarity = most_similar(work.representatives, anomaly, self._scale)
        return best if similarity >= self._threshold else None


def most_similar(representatives: Vector, anomaly: Vector, scale: float) -> tuple[int, float]:
    """Index and similarity exp(-distance / scale) of the closest row; ties go to the earliest."""
    difference = representatives - anomaly
    squared = np.einsum("ij,ij->i", difference, difference)
    best = int(squared.argmin())
    return best, math.exp(-math.sqrt(float(squared[best])) / scale)
