"""The batch stage: negative-voltage policy, downsampling, smoothing, noise gate and anomaly profiles
(deviation statistics, or shape profiles from shape.py).

Every signal of a batch is smoothed at once, whatever its length: the samples are laid end to end in
one flat array and reduced per window (`np.add.reduceat`). Only the noise gate walks the batch in
order, because each normal signal becomes the reference of its device's next one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from harness.contracts import SignalReceived
from workers.candidate.domain.model import PreparedBatch, PreparedSignal, Vector
from workers.candidate.domain.settings import PROFILE_SIZE, Features, NegativeVoltage, Settings, ShapeParts
from workers.candidate.domain.shape import Ragged, shape_profiles

Indices = npt.NDArray[np.intp]


def prepare_batch(
    signals: Sequence[SignalReceived], settings: Settings, references: Mapping[str, Vector | None]
) -> PreparedBatch:
    """`references` holds each device's reference before the batch; the result says which moved."""
    smoothed, negatives = smooth_ragged(signals, settings)
    rows = smoothed.rows()
    medians, median_rms = flat_reference_scores(signals, smoothed, rows, references)
    current = dict(references)
    moved: dict[str, Vector] = {}
    prepared: list[PreparedSignal | None] = [None] * len(signals)
    anomalies: list[int] = []
    against: list[Vector | float] = []  # each anomaly's reference: a device's vector, or a flat median
    threshold = settings.noise_threshold
    for index, signal in enumerate(signals):
        device_id = signal.meta.device_id
        if negatives[index]:
            reason = f"negative voltage: {negatives[index]} samples below 0"
            prepared[index] = PreparedSignal(signal.signal_id, device_id, decline_reason=reason)
            continue
        row = rows[index]
        vector = current.get(device_id)
        reference: Vector | float
        if vector is not None and vector.shape == row.shape:
            deviation = row - vector
            reference, rms = vector, math.sqrt(float(deviation @ deviation) / deviation.shape[0])
        else:  # no reference of this length yet: a flat line at the signal's own median
            reference, rms = medians[index], median_rms[index]
        if rms < threshold:
            current[device_id] = moved[device_id] = row
            prepared[index] = PreparedSignal(signal.signal_id, device_id)
        else:
            anomalies.append(index)
            against.append(reference)
    for index, profile in zip(anomalies, anomaly_profiles(anomalies, against, rows, settings), strict=True):
        prepared[index] = PreparedSignal(signals[index].signal_id, signals[index].meta.device_id, profile)
    return PreparedBatch(prepared, moved)  # type: ignore[arg-type]  # every slot is filled by now


def anomaly_profiles(
    anomalies: Sequence[int], against: Sequence[Vector | float], rows: Sequence[Vector], settings: Settings
) -> list[Vector]:
    if settings.features is Features.SHAPE:
        quantiles = settings.shape_parts is ShapeParts.WAVE_QUANTILES
        return shape_profiles([rows[i] for i in anomalies], settings.shape_length, settings.amplitude_weight, quantiles)
    return profiles([rows[i] - reference for i, reference in zip(anomalies, against, strict=True)])


def flat_reference_scores(
    signals: Sequence[SignalReceived], smoothed: Ragged, rows: Sequence[Vector], references: Mapping[str, Vector | None]
) -> tuple[list[float], list[float]]:
    """Each row's median and its RMS distance from a flat line there, for the rows that may need them:
    those of devices with no reference of their length before the batch, or with rows of two lengths."""
    lengths: dict[str, set[int]] = {}
    for signal, row in zip(signals, rows, strict=True):
        lengths.setdefault(signal.meta.device_id, set()).add(row.shape[0])
    needy = set()
    for device_id, seen in lengths.items():
        reference = references.get(device_id)
        if len(seen) > 1 or reference is None or reference.shape[0] not in seen:
            needy.add(device_id)
    medians = [math.nan] * len(rows)
    scores = [math.nan] * len(rows)
    chosen = np.array([i for i, s in enumerate(signals) if s.meta.device_id in needy], dtype=np.intp)
    if chosen.size:
        part = smoothed if chosen.size == len(rows) else Ragged.of([rows[i] for i in chosen])
        median = part.medians()
        deviation = part.flat - np.repeat(median, part.lengths)
        rms = np.sqrt(np.add.reduceat(deviation * deviation, part.starts) / part.lengths)
        for i, m, r in zip(chosen.tolist(), median.tolist(), rms.tolist(), strict=True):
            medians[i], scores[i] = m, r
    return medians, scores


def smooth_ragged(signals: Sequence[SignalReceived], settings: Settings) -> tuple[Ragged, list[int]]:
    """Every signal's smoothed samples, end to end, and, if the policy rejects them, its negatives.

    The windows are summed in float64 by `np.add.reduceat`, exactly as legacy sums each signal's.
    """
    lengths: Indices = np.fromiter((s.samples.shape[0] for s in signals), np.intp, len(signals))
    flat = np.concatenate([s.samples for s in signals]).astype(np.float64) if signals else np.empty(0)
    negatives = [0] * len(signals)
    if settings.negative_voltage is NegativeVoltage.REJECT and signals:
        starts = np.cumsum(lengths) - lengths
        negatives = np.add.reduceat((flat < 0).astype(np.intp), starts).tolist()
    elif settings.negative_voltage is NegativeVoltage.CLIP:
        np.maximum(flat, 0, out=flat)
    if settings.downsample > 1:
        flat = flat[_positions(lengths) % settings.downsample == 0]
        lengths = -(-lengths // settings.downsample)
    window = settings.window_size
    counts = -(-lengths // window)  # windows per signal, the last one maybe partial
    within = _positions(counts) * window  # each window's first sample, from its signal's start
    sizes = np.minimum(window, np.repeat(lengths, counts) - within)
    window_starts = np.repeat(np.cumsum(lengths) - lengths, counts) + within
    means = np.add.reduceat(flat, window_starts) / sizes if window_starts.size else np.empty(0)
    means.flags.writeable = False  # rows become references that later signals read
    return Ragged(means, counts), negatives


def smooth_batch(signals: Sequence[SignalReceived], settings: Settings) -> tuple[list[Vector], list[int]]:
    """Each signal's smoothed vector (a read-only row) and, if the policy rejects them, its negatives."""
    smoothed, negatives = smooth_ragged(signals, settings)
    return smoothed.rows(), negatives


def _positions(lengths: Indices) -> Indices:
    """0, 1, ..., n - 1 for each length n, end to end."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.intp) - np.repeat(np.cumsum(lengths) - lengths, lengths)


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
