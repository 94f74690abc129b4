"""The candidate's hyperparameters as a plain value; config.py fills it from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PROFILE_SIZE = 5  # mean, std, min, max and mean |diff| of a signal's deviation
SHARED_SCOPE = ""  # the clusters' scope when they are shared; no device id is blank, so none collides


class NegativeVoltage(StrEnum):
    """What to do with samples below 0 V, which no healthy mains sensor reports."""

    KEEP = "keep"
    CLIP = "clip"
    REJECT = "reject"


class Centroid(StrEnum):
    """How a cluster's representative profile follows its members."""

    FIRST = "first"  # the first member's profile, forever
    MEAN = "mean"  # the running mean of all members' profiles


class Features(StrEnum):
    """What an anomaly's profile describes."""

    DEVIATION = "deviation"  # 5 summary statistics of (smoothed - reference), as legacy
    SHAPE = "shape"  # the smoothed signal resampled and z-normalised, plus its log amplitude


class ShapeParts(StrEnum):
    """What a shape profile holds beside its log amplitude (shape features only)."""

    WAVE = "wave"  # the waveform in time order
    WAVE_QUANTILES = "wave+quantiles"  # and its sorted values: the same wherever in the window an event starts


class ClusterScope(StrEnum):
    """Whose anomalies may share a cluster."""

    DEVICE = "device"  # each device has its own clusters, as legacy
    SHARED = "shared"  # one set of clusters for the whole fleet


@dataclass(frozen=True)
class Settings:
    window_size: int = 10
    noise_threshold: float = 1.5
    similarity_threshold: float = 0.5
    negative_voltage: NegativeVoltage = NegativeVoltage.KEEP
    downsample: int = 1
    centroid: Centroid = Centroid.FIRST
    features: Features = Features.DEVIATION
    shape_length: int = 32  # samples the smoothed signal is resampled to (shape features only)
    amplitude_weight: float = 1.0  # weight of log amplitude against the shape (shape features only)
    similarity_scale: float = 20.0  # profile distance that divides the similarity by e
    cluster_scope: ClusterScope = ClusterScope.DEVICE
    shape_parts: ShapeParts = ShapeParts.WAVE

    def scope_of(self, device_id: str) -> str:
        """The key under which this device's anomalies find their clusters."""
        return device_id if self.cluster_scope is ClusterScope.DEVICE else SHARED_SCOPE
