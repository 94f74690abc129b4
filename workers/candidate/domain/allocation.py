"""Online profile clustering: an anomaly joins the most similar cluster of its scope (its device, or
the fleet), or founds a new one."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from workers.candidate.domain.features import prepare_batch
from workers.candidate.domain.model import (
    Allocation,
    ClusterSet,
    ClusterWork,
    PreparedBatch,
    SignalReceived,
    Vector,
)
from workers.candidate.domain.settings import Centroid, Settings
from workers.candidate.ports import SignalClustering

BLOCK = 1 << 20  # differences held at once when every anomaly is compared with every cluster


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

    def allocate(self, anomalies: Vector, work: ClusterWork, label_of: Callable[[int], str]) -> Allocation:
        if self._running_mean:  # every join moves a representative: match one anomaly at a time
            return self._allocate_each(anomalies, work, label_of)
        return self._allocate_fixed(anomalies, work, label_of)

    def _allocate_each(self, anomalies: Vector, work: ClusterWork, label_of: Callable[[int], str]) -> Allocation:
        allocation = Allocation()
        for position, anomaly in enumerate(anomalies):
            if len(work):
                best, similarity = most_similar(work.representatives, anomaly, self._scale)
                if similarity >= self._threshold:
                    work.join(best, anomaly)
                    allocation.clusters.append(best)
                    continue
            allocation.found(position, work, anomaly, label_of)
        return allocation

    def _allocate_fixed(self, anomalies: Vector, work: ClusterWork, label_of: Callable[[int], str]) -> Allocation:
        """Representatives that never move: every anomaly is compared with the clusters from before at
        once and, whenever one founds a cluster, the anomalies after it with that one. Joins only count."""
        allocation = Allocation()
        known = len(work)
        if known:
            squared = squared_distances(anomalies, work.representatives)
            nearest = squared.argmin(axis=1)  # ties go to the earliest, as in most_similar
            least = squared[np.arange(len(anomalies)), nearest]
        else:
            nearest, least = np.full(len(anomalies), -1), np.full(len(anomalies), math.inf)
        best, distance = nearest.tolist(), least.tolist()
        clusters, exp, sqrt, scale, threshold = allocation.clusters, math.exp, math.sqrt, self._scale, self._threshold
        for i in range(len(anomalies)):
            if best[i] >= 0 and exp(-sqrt(distance[i]) / scale) >= threshold:
                clusters.append(best[i])
            elif allocation.found(i, work, anomalies[i], label_of) and i + 1 < len(anomalies):
                known = len(work)  # the anomalies after it may join it
                rest = squared_distances(anomalies[i + 1 :], work.representatives[known - 1 :])[:, 0]
                closer = rest < least[i + 1 :]  # strictly: a tie keeps the earlier cluster
                nearest[i + 1 :][closer], least[i + 1 :][closer] = known - 1, rest[closer]
                best[i + 1 :], distance[i + 1 :] = nearest[i + 1 :].tolist(), least[i + 1 :].tolist()
        work.count_joins(clusters, allocation.founded)
        return allocation


def squared_distances(anomalies: Vector, representatives: Vector) -> Vector:
    """[i, j]: the squared distance of anomaly i from representative j, summed as in most_similar."""
    result = np.empty((anomalies.shape[0], representatives.shape[0]))
    step = max(1, BLOCK // max(1, representatives.size))
    for start in range(0, anomalies.shape[0], step):
        difference = representatives[None, :, :] - anomalies[start : start + step, None, :]
        result[start : start + step] = np.einsum("ijk,ijk->ij", difference, difference)
    return result


def most_similar(representatives: Vector, anomaly: Vector, scale: float) -> tuple[int, float]:
    """Index and similarity exp(-distance / scale) of the closest row; ties go to the earliest."""
    difference = representatives - anomaly
    squared = np.einsum("ij,ij->i", difference, difference)
    best = int(squared.argmin())
    return best, math.exp(-math.sqrt(float(squared[best])) / scale)
