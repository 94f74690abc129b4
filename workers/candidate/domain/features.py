"""The batch stage: negative-voltage policy, downsampling, smoothing, noise gate and anomaly profiles
(deviation statistics, or shape profiles from shape.py).

Smoothing and profiles run on whole matrices of equal-length signals; only the noise gate walks the
batch in order, because each normal signal becomes the reference of its device's next one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from harness.contracts import SignalReceived
from workers.candidate.domain.model import PreparedBatch, PreparedSignal, Vector
from workers.candidate.domain.settings import PROFILE_SIZE, Features, NegativeVoltage, Settings
from workers.candidate.domain.shape import shape_profiles


def prepare_batch(
    signals: Sequence[SignalReceived], settings: Settings, references: Mapping[str, Vector | None]
) -> PreparedBatch:
    """`references` holds each device's reference before the batch; the result says which moved."""
    smoothed, negatives = smooth_batch(signals, settings)
    current = dict(references)
    moved: dict[str, Vector] = {}
    prepared: list[PreparedSignal | None] = [None] * len(signals)
    anomalies: list[int] = []
    deviations: list[Vector] = []
    threshold = settings.noise_threshold
    for index, signal in enumerate(signals):
        device_id = signal.meta.device_id
        if negatives[index]:
            reason = f"negative voltage: {negatives[index]} samples below 0"
            prepared[index] = PreparedSignal(signal.signal_id, device_id, decline_reason=reason)
            continue
        row = smoothed[index]
        reference = current.get(device_id)
        if reference is None or reference.shape != row.shape:
            reference = np.full(row.shape, np.median(row))
        deviation = row - reference
        if math.sqrt(float(deviation @ deviation) / deviation.shape[0]) < threshold:
            current[device_id] = moved[device_id] = row
            prepared[index] = PreparedSignal(signal.signal_id, device_id)
        else:
            anomalies.append(index)
            deviations.append(deviation)
    for index, profile in zip(anomalies, anomaly_profiles(anomalies, deviations, smoothed, settings), strict=True):
        prepared[index] = PreparedSignal(signals[index].signal_id, signals[index].meta.device_id, profile)
    return PreparedBatch(prepared, moved)  # type: ignore[arg-type]  # every slot is filled by now


def anomaly_profiles(
    anomalies: Sequence[int], deviations: Sequence[Vector], smoothed: Sequence[Vector], settings: Settings
) -> list[Vector]:
    if settings.features is Features.SHAPE:
        return shape_profiles([smoothed[i] for i in anomalies], settings.shape_length, settings.amplitude_weight)
    return profiles(deviations)


def smooth_batch(signals: Sequence[SignalReceived], settings: Settings) -> tuple[list[Vector], list[int]]:
    """Each signal's smoothed vector (a read-only row) and, if the policy rejects them, its negatives."""
    by_length: dict[int, list[int]] = {}
    for index, signal in enumerate(signals):
        by_length.setdefault(signal.samples.shape[0], []).append(index)
    rows: list[Vector] = [None] * len(signals)  # type: ignore[list-item]  # filled per length below
    negatives = [0] * len(signals)
    for indices in by_length.values():
        raw = np.stack([signals[i].samples for i in indices])
        if settings.negative_voltage is NegativeVoltage.REJECT:
            for i, count in zip(indices, np.count_nonzero(raw < 0, axis=1).tolist(), strict=True):
                negatives[i] = count
        elif settings.negative_voltage is NegativeVoltage.CLIP:
            np.maximum(raw, 0, out=raw)
        smoothed = tumbling_mean(raw[:, :: settings.downsample], settings.window_size)
        smoothed.flags.writeable = False  # rows become references that later signals read
        for i, row in zip(indices, smoothed, strict=True):
            rows[i] = row
    return rows, negatives


def tumbling_mean(rows: npt.NDArray[np.float32], window: int) -> Vector:
    """Row-wise mean of non-overlapping windows, in float64; a last partial window uses its own count.

    Sums of a few float32 values are exact in float64, so the order of summation does not matter
    and einsum (single-threaded, unlike a BLAS product) gives the numbers a per-window mean gives.
    """
    count, length = rows.shape
    whole = length - length % window
    parts = []
    if whole:
        windows = rows[:, :whole].reshape(count, whole // window, window)
        parts.append(np.einsum("ijk->ij", windows, dtype=np.float64) / window)
    if whole < length:
        parts.append(rows[:, whole:].mean(axis=1, dtype=np.float64, keepdims=True))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def profiles(deviations: Sequence[Vector]) -> list[Vector]:
    """Mean, std, min, max and mean |diff| of each deviation, computed per group of equal length."""
    by_length: dict[int, list[int]] = {}
    for index, deviation in enumerate(deviations):
        by_length.setdefault(deviation.shape[0], []).append(index)
    result: list[Vector] = [None] * len(deviations)  # type: ignore[list-item]  # filled per length below
    for length, indices in by_length.items():
        matrix = np.stack([deviations[i] for i in indices])
        roughness = np.abs(np.diff(matrix, axis=1)).mean(axis=1) if length > 1 else np.zeros(len(indices))
        stats = np.empty((len(indices), PROFILE_SIZE))
        stats[:, 0] = matrix.mean(axis=1)
        stats[:, 1] = matrix.std(axis=1)
        stats[:, 2] = matrix.min(axis=1)
        stats[:, 3] = matrix.max(axis=1)
        stats[:, 4] = roughness
        stats.flags.writeable = False
        for i, row in zip(indices, stats, strict=True):
            result[i] = row
    return result
