"""The incumbent clustering algorithm, as its data scientist first wrote it: one signal at a time.

Deliberately plain and readable; it is the baseline the candidate must agree with, not a fast path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from harness.clustering import Assignment
from harness.contracts import DEFAULT_LABEL, SignalReceived
from workers.legacy.state import DeviceStore, StoredCluster

MODEL_VERSION = "legacy-1.0"
WINDOW_SIZE = 10  # samples per tumbling smoothing window
NOISE_THRESHOLD = 1.5  # volts RMS of (smoothed - reference) below which a signal is normal
SIMILARITY_THRESHOLD = 0.5  # minimum similarity to join an existing cluster
SIMILARITY_SCALE = 20.0  # volts of profile distance that divide the similarity by e

Vector = npt.NDArray[np.float64]


def smooth(samples: npt.NDArray[np.float32], window: int = WINDOW_SIZE) -> Vector:
    """Mean of each non-overlapping window; the last, partial window is averaged over what it has."""
    x = samples.astype(np.float64)
    starts = np.arange(0, len(x), window)
    sizes = np.diff(np.append(starts, len(x)))
    return np.add.reduceat(x, starts) / sizes


def noise_score(deviation: Vector) -> float:
    return float(np.sqrt(np.mean(deviation**2)))


def profile(deviation: Vector) -> Vector:
    """What an anomaly looks like: mean, spread, extremes and roughness of its deviation."""
    roughness = float(np.mean(np.abs(np.diff(deviation)))) if len(deviation) > 1 else 0.0
    return np.array(
        [np.mean(deviation), np.std(deviation), np.min(deviation), np.max(deviation), roughness],
        dtype=np.float64,
    )


def similarity(a: Vector, b: Vector) -> float:
    return math.exp(-float(np.linalg.norm(a - b)) / SIMILARITY_SCALE)


class LegacyClusterer:
    """Online clustering of anomalous signals per device; normal signals go to DEFAULT_LABEL."""

    model_version = MODEL_VERSION

    def __init__(self, store: DeviceStore) -> None:
        self._store = store

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        assignments = []
        for signal in signals:
            try:
                assignments.append(self.assign(signal))
            except Exception as exc:  # one bad signal must not lose the rest of the batch
                assignments.append(Assignment.error(type(exc).__name__, str(exc)))
        return assignments

    def assign(self, signal: SignalReceived) -> Assignment:
        device = signal.meta.device_id
        state = self._store.load(device)
        smoothed = smooth(signal.samples)

        if state.reference is not None and len(state.reference) == len(smoothed):
            reference = np.array(state.reference)
        else:
            reference = np.full(len(smoothed), np.median(smoothed))
        deviation = smoothed - reference

        if noise_score(deviation) < NOISE_THRESHOLD:
            state.reference = smoothed.tolist()
            self._store.save(device, state)
            return Assignment.clustered(DEFAULT_LABEL, False)

        anomaly = profile(deviation)
        best: StoredCluster | None = None
        best_similarity = -1.0
        for cluster in state.clusters:  # creation order, so ties go to the earliest cluster
            s = similarity(anomaly, np.array(cluster.profile))
            if s > best_similarity:
                best, best_similarity = cluster, s

        if best is not None and best_similarity >= SIMILARITY_THRESHOLD:
            best.members += 1
            self._store.save(device, state)
            return Assignment.clustered(best.label, False)

        label = f"{device}:{len(state.clusters) + 1}"
        state.clusters.append(StoredCluster(label, anomaly.tolist(), 1))
        self._store.save(device, state)
        return Assignment.clustered(label, True)
