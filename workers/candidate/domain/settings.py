"""The candidate's hyperparameters as a plain value; config.py fills it from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SIMILARITY_SCALE = 20.0  # volts of profile distance that divide the similarity by e
PROFILE_SIZE = 5  # mean, std, min, max and mean |diff| of a signal's deviation


class NegativeVoltage(StrEnum):
    """What to do with samples below 0 V, which no healthy mains sensor reports."""

    KEEP = "keep"
    CLIP = "clip"
    REJECT = "reject"


class Centroid(StrEnum):
    """How a cluster's representative profile follows its members."""

    FIRST = "first"  # the first member's profile, forever
    MEAN = "mean"  # the running mean of all members' profiles


@dataclass(frozen=True)
class Settings:
    window_size: int = 10
    noise_threshold: float = 1.5
    similarity_threshold: float = 0.5
    negative_voltage: NegativeVoltage = NegativeVoltage.KEEP
    downsample: int = 1
    centroid: Centroid = Centroid.FIRST
