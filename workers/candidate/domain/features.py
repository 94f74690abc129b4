"""The batch stage: negative-voltage policy, downsampling, smoothing, noise gate and anomaly profiles
(deviation statistics, or shape profiles from shape.py).

Every signal of a batch is smoothed at once, whatever its length: the samples are laid end to end in
one flat array and reduced per window (`np.add.reduceat`). Only the noise gate walks the batch in
order, because each normal signal becomes the reference of its device's next one; the distances it
compares are computed beforehand, for the whole batch at once (`Screen`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from harness.contracts import SignalReceived
from workers.candidate.domain.model import PreparedBatch, Vector
from workers.candidate.domain.settings import PROFILE_SIZE, Features, NegativeVoltage, Settings, ShapeParts
from workers.candidate.domain.shape import Ragged, shape_matrix
from workers.candidate.domain.windows import tiled_window_sums

Indices = npt.NDArray[np.intp]


DEVICE_ID = attrgetter("meta.device_id")  # a signal's device, in one C call
LAGS = 4  # same-device predecessors each signal is screened against at once; a further one costs a call


def prepare_batch(
    signals: Sequence[SignalReceived], settings: Settings, references: Mapping[str, Vector | None]
) -> PreparedBatch:
    """`references` holds each device's reference before the batch; the result says which moved."""
    smoothed, negatives = smooth_ragged(signals, settings)
    device_ids = list(map(DEVICE_ID, signals))
    declined = {i: f"negative voltage: {count} samples below 0" for i, count in enumerate(negatives) if count}
    screen = Screen(smoothed, device_ids, references, declined)
    anomalies, against, moved = screen.run(settings.noise_threshold)
    if settings.features is Features.SHAPE:
        quantiles = settings.shape_parts is ShapeParts.WAVE_QUANTILES
        rows = [screen.row(i) for i in anomalies]
        found = shape_matrix(rows, settings.shape_length, settings.amplitude_weight, quantiles)
    else:
        found = screen.deviation_profiles(anomalies, against)
    return PreparedBatch(device_ids, anomalies, found, declined, moved)


MEDIAN = -1  # an anomaly screened against a flat line at its own median, not against a vector


class Screen:
    """The noise gate of a batch. Each normal signal becomes its device's reference, so the gate walks the
    batch in order; the RMS distances it needs are computed beforehand, all at once, against the device's
    reference from before the batch and against each of its LAGS predecessors in the batch.

    Rows and references sit in one zero-padded matrix: rows 0..n-1 are the batch's smoothed signals,
    the rows after them the devices' references from before the batch."""

    def __init__(
        self,
        smoothed: Ragged,
        device_ids: list[str],
        references: Mapping[str, Vector | None],
        declined: Mapping[int, str],
    ) -> None:
        self._lengths: list[int] = smoothed.lengths.tolist()
        self._device_ids = device_ids
        self._declined = declined
        count = len(device_ids)
        stored = {d: r for d, r in references.items() if r is not None and 0 < r.shape[0] <= smoothed.width}
        self._past_row = {device_id: count + k for k, device_id in enumerate(stored)}
        self._matrix = np.zeros((count + len(stored), smoothed.width))
        smoothed.pad_into(self._matrix[:count])
        for device_id, reference in stored.items():
            self._matrix[self._past_row[device_id], : reference.shape[0]] = reference
            self._lengths.append(reference.shape[0])
        self._matrix.flags.writeable = False
        self._medians, self._median_rms = flat_reference_scores(device_ids, smoothed, references)
        self._rms, self._positions = self._screen_all()

    def row(self, index: int) -> Vector:
        return self._matrix[index, : self._lengths[index]]

    def run(self, threshold: float) -> tuple[list[int], list[int], dict[str, Vector]]:
        """The anomalies, what each was screened against (a matrix row or MEDIAN), and the moved references."""
        current = dict(self._past_row)  # each device's reference: a row of the matrix
        moved: set[str] = set()
        anomalies: list[int] = []
        against: list[int] = []
        lengths, rms, position, count = self._lengths, self._rms, self._positions, len(self._device_ids)
        declined, median_rms = self._declined, self._median_rms
        for index, device_id in enumerate(self._device_ids):
            if declined and index in declined:
                continue
            reference = current.get(device_id, MEDIAN)
            if reference == MEDIAN or lengths[reference] != lengths[index]:
                reference, distance = MEDIAN, median_rms[index]
            elif reference >= count:  # the device's reference from before the batch
                distance = rms[0][index] if position[index] <= LAGS else self._distance(index, reference)
            elif (lag := position[index] - position[reference]) <= LAGS:
                distance = rms[lag][index]
            else:  # the device's last normal signal is further back than the screen looked
                distance = self._distance(index, reference)
            if distance < threshold:
                current[device_id] = index
                moved.add(device_id)
            else:
                anomalies.append(index)
                against.append(reference)
        references = {device_id: self.row(current[device_id]).copy() for device_id in moved}
        for vector in references.values():
            vector.flags.writeable = False  # later signals read it
        return anomalies, against, references

    def deviation_profiles(self, anomalies: Sequence[int], against: Sequence[int]) -> Vector:
        """Each anomaly's deviation from what it was screened against, summarised (`profile_matrix`)."""
        result = np.empty((len(anomalies), PROFILE_SIZE))
        by_length: dict[int, list[int]] = {}
        if anomalies and min(self._lengths) == max(self._lengths):  # one length: one group
            by_length[self._lengths[0]] = list(range(len(anomalies)))
        else:
            for k, index in enumerate(anomalies):
                by_length.setdefault(self._lengths[index], []).append(k)
        rows, references = np.array(anomalies, dtype=np.intp), np.array(against, dtype=np.intp)
        for length, chosen in by_length.items():
            picked = np.array(chosen, dtype=np.intp)
            flat = references[picked] == MEDIAN
            base = self._matrix[np.where(flat, 0, references[picked]), :length]
            if flat.any():
                base[flat] = np.array(self._medians)[rows[picked][flat]][:, None]
            result[picked] = profile_matrix(self._matrix[rows[picked], :length] - base)
        result.flags.writeable = False
        return result

    def _screen_all(self) -> tuple[list[list[float]], list[int]]:
        """rms[lag][row]: the RMS distance of each row from its predecessor `lag` places back in its
        device's chain (its screened signals, in order), and (lag 0) from the device's reference from
        before the batch, for the first LAGS + 1 rows of the chain only (a later row meets that reference
        only after as many anomalies); NaN where there is none of the row's length. And each row's place
        in its chain."""
        count = len(self._device_ids)
        device, past = self._device_codes()
        order = np.argsort(device, kind="stable")  # each device's chain, one after the other
        chained = device[order]
        starts = np.flatnonzero(np.r_[True, chained[1:] != chained[:-1]])
        positions = np.empty(count, dtype=np.intp)
        positions[order] = np.arange(count) - np.repeat(starts, np.diff(np.r_[starts, count]))
        heads = np.flatnonzero(positions <= LAGS)
        pairs = [(heads, past[device[heads]])] + [
            (order[lag:], np.where(chained[lag:] == chained[:-lag], order[:-lag], -1)) for lag in range(1, LAGS + 1)
        ]
        rms = np.full((LAGS + 1, count), np.nan)
        width = self._matrix.shape[1]
        in_order = self._matrix[order] if min(self._lengths, default=0) == width else None
        lengths = np.array(self._lengths, dtype=np.intp)
        for lag, (rows, references) in enumerate(pairs):
            valid = references >= 0
            if in_order is not None:  # one length: a lag's pairs are the chains against themselves, shifted
                if lag:
                    difference = in_order[lag:] - in_order[:-lag]
                else:
                    difference = self._matrix[rows] - self._matrix[np.where(valid, references, 0)]
                squared = np.einsum("ij,ij->i", difference, difference)
                rms[lag, rows[valid]] = np.sqrt(squared[valid] / width)
            else:
                valid[valid] = lengths[rows[valid]] == lengths[references[valid]]
                rms[lag, rows[valid]] = self._distances(rows[valid], references[valid])
        return rms.tolist(), positions.tolist()

    def _device_codes(self) -> tuple[Indices, Indices]:
        """Each row's device as a number (declined rows share one of their own), and each number's past
        reference row (-1: none)."""
        codes = {device_id: code for code, device_id in enumerate(dict.fromkeys(self._device_ids))}
        device = np.fromiter(map(codes.__getitem__, self._device_ids), np.intp, len(self._device_ids))
        past = np.full(len(codes) + 1, -1, dtype=np.intp)
        for device_id, past_row in self._past_row.items():
            if device_id in codes:
                past[codes[device_id]] = past_row
        if self._declined:
            device[list(self._declined)] = len(codes)
        return device, past

    def _distance(self, row: int, reference: int) -> float:
        """`_distances` of one pair, with the same arithmetic."""
        length = self._lengths[row]
        difference = self._matrix[row : row + 1, :length] - self._matrix[reference : reference + 1, :length]
        return math.sqrt(float(np.einsum("ij,ij->i", difference, difference)[0]) / length)

    def _distances(self, rows: Indices, references: Indices) -> Vector:
        """The RMS distance of each row from its reference (of equal length). Pairs of one length are
        reduced together over that length only, so a distance never depends on the rest of the batch."""
        result = np.empty(rows.shape[0])
        lengths = np.array(self._lengths, dtype=np.intp)[rows]
        for length in np.unique(lengths).tolist():
            chosen = lengths == length
            difference = self._matrix[rows[chosen], :length] - self._matrix[references[chosen], :length]
            result[chosen] = np.sqrt(np.einsum("ij,ij->i", difference, difference) / length)
        return result


def flat_reference_scores(
    device_ids: Sequence[str], smoothed: Ragged, references: Mapping[str, Vector | None]
) -> tuple[list[float], list[float]]:
    """Each row's median and its RMS distance from a flat line there, for the rows that may need them:
    those of devices with no reference of their length before the batch, or with rows of two lengths."""
    lengths: dict[str, set[int]] = {}
    if smoothed.lengths.size and smoothed.lengths.min() == smoothed.lengths.max():  # one length for all
        lengths = {device_id: {int(smoothed.lengths[0])} for device_id in set(device_ids)}
    else:
        for device_id, length in zip(device_ids, smoothed.lengths.tolist(), strict=True):
            lengths.setdefault(device_id, set()).add(length)
    needy = set()
    for device_id, seen in lengths.items():
        reference = references.get(device_id)
        if len(seen) > 1 or reference is None or reference.shape[0] not in seen:
            needy.add(device_id)
    medians = [math.nan] * len(device_ids)
    scores = [math.nan] * len(device_ids)
    chosen = [i for i, device_id in enumerate(device_ids) if device_id in needy] if needy else []
    if chosen:
        part = smoothed if len(chosen) == len(device_ids) else smoothed.take(chosen)
        median = part.medians()
        deviation = part.flat - np.repeat(median, part.lengths)
        rms = np.sqrt(np.add.reduceat(deviation * deviation, part.starts) / part.lengths)
        for i, m, r in zip(chosen, median.tolist(), rms.tolist(), strict=True):
            medians[i], scores[i] = m, r
    return medians, scores


def smooth_ragged(signals: Sequence[SignalReceived], settings: Settings) -> tuple[Ragged, list[int]]:
    """Every signal's smoothed samples, end to end, and, if the policy rejects them, its negatives.

    The windows are summed in float64 with the arithmetic of `np.add.reduceat` (windows.py), exactly as
    legacy sums each signal's.
    """
    arrays = [signal.samples for signal in signals]
    lengths: Indices = np.fromiter(map(len, arrays), np.intp, len(arrays))
    flat = np.concatenate(arrays, dtype=np.float64) if arrays else np.empty(0)
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
    if not flat.size:
        means = np.empty(0)
    elif not (lengths % window).any():  # whole windows only (the usual case): they tile the flat array
        means = tiled_window_sums(flat, window) / window
    else:
        within = _positions(counts) * window  # each window's first sample, from its signal's start
        sizes = np.minimum(window, np.repeat(lengths, counts) - within)
        window_starts = np.repeat(np.cumsum(lengths) - lengths, counts) + within
        means = np.add.reduceat(flat, window_starts) / sizes
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
    """`profile_matrix` of each deviation, computed per group of equal length."""
    by_length: dict[int, list[int]] = {}
    for index, deviation in enumerate(deviations):
        by_length.setdefault(deviation.shape[0], []).append(index)
    result: list[Vector] = [None] * len(deviations)  # type: ignore[list-item]  # filled per length below
    for indices in by_length.values():
        for i, row in zip(indices, profile_matrix(np.stack([deviations[i] for i in indices])), strict=True):
            result[i] = row
    return result


def profile_matrix(matrix: Vector) -> Vector:
    """Mean, std, min, max and mean |diff| of each row (rows of one length), read-only.

    np.mean and np.std's own steps (a sum, a division by the count; for the std the squared distances from
    that mean, summed, divided and rooted), the mean computed once for both."""
    count, length = matrix.shape
    stats = np.empty((count, PROFILE_SIZE))
    mean = np.add.reduce(matrix, axis=1, keepdims=True)
    np.true_divide(mean, length, out=mean)
    stats[:, 0] = mean[:, 0]
    spread = np.subtract(matrix, mean)
    np.square(spread, out=spread)
    stats[:, 1] = np.sqrt(np.add.reduce(spread, axis=1) / length)
    stats[:, 2] = matrix.min(axis=1)
    stats[:, 3] = matrix.max(axis=1)
    if length > 1:
        steps = np.subtract(matrix[:, 1:], matrix[:, :-1])  # np.diff
        stats[:, 4] = np.add.reduce(np.abs(steps, out=steps), axis=1) / (length - 1)
    else:
        stats[:, 4] = 0.0
    stats.flags.writeable = False
    return stats
