"""Candidate hyperparameters: declared once with the harness's hyperparameter SDK (harness.hyperparameters),
read from HARNESS_CANDIDATE_* environment variables, validated at start, hashed into model_version."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import fields
from enum import StrEnum
from typing import Any

from harness.hyperparameters import Hyperparameter, HyperparameterError, HyperparameterSet
from workers.candidate.domain.settings import Centroid, ClusterScope, Features, NegativeVoltage, Settings, ShapeParts

BASE_MODEL_VERSION = "candidate-1.0"


ConfigError = HyperparameterError  # a variable the candidate cannot run with; the message names it


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from `env`; an unset or blank variable takes its default. Raises ConfigError."""
    return Settings(**SCHEMA.load(env))


def model_version(settings: Settings) -> str:
    """ "candidate-1.0" with the defaults, else suffixed with a short hash of what was changed."""
    return SCHEMA.model_version({field.name: getattr(settings, field.name) for field in fields(Settings)})


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError(raw)
        return value

    return parse


def _number(low: float, high: float, low_inclusive: bool) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not math.isfinite(value) or value > high or value < low or (value == low and not low_inclusive):
            raise ValueError(raw)
        return value

    return parse


def _choice(kind: type[StrEnum]) -> Callable[[str], StrEnum]:
    def parse(raw: str) -> StrEnum:
        return kind(raw.lower())

    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {
    "window_size": _integer(1),
    "noise_threshold": _number(0.0, math.inf, low_inclusive=False),
    "similarity_threshold": _number(0.0, 1.0, low_inclusive=False),
    "negative_voltage": _choice(NegativeVoltage),
    "downsample": _integer(1),
    "centroid": _choice(Centroid),
    "features": _choice(Features),
    "shape_length": _integer(2),
    "amplitude_weight": _number(0.0, math.inf, low_inclusive=True),
    "similarity_scale": _number(0.0, math.inf, low_inclusive=False),
    "cluster_scope": _choice(ClusterScope),
    "shape_parts": _choice(ShapeParts),
}


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter(
        "HARNESS_CANDIDATE_WINDOW_SIZE", "window_size", "10",
        _PARSERS["window_size"], "an integer >= 1",
        "Samples per tumbling smoothing window (after downsampling).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_NOISE_THRESHOLD", "noise_threshold", "1.5",
        _PARSERS["noise_threshold"], "a number > 0",
        "Volts RMS of (smoothed - reference) below which a signal is normal.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_SIMILARITY_THRESHOLD", "similarity_threshold", "0.5",
        _PARSERS["similarity_threshold"], "a number in (0, 1]",
        "Minimum similarity exp(-distance / scale) for an anomaly to join an existing cluster.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_NEGATIVE_VOLTAGE", "negative_voltage", "keep",
        _PARSERS["negative_voltage"], "one of keep, clip, reject",
        "Samples below 0 V: keep them, clip them to 0, or decline the whole signal.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_DOWNSAMPLE", "downsample", "1",
        _PARSERS["downsample"], "an integer >= 1",
        "Keep every k-th sample before smoothing (1 keeps all).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_CENTROID", "centroid", "first",
        _PARSERS["centroid"], "one of first, mean",
        "A cluster's representative: its first member's profile, or the running mean of its members.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_FEATURES", "features", "deviation",
        _PARSERS["features"], "one of deviation, shape",
        "An anomaly's profile: 5 statistics of its deviation from the reference, or its shape "
        "(the smoothed signal resampled, z-normalised, plus its log amplitude).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_SHAPE_LENGTH", "shape_length", "32",
        _PARSERS["shape_length"], "an integer >= 2",
        "Points the smoothed signal is resampled to for shape features.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_AMPLITUDE_WEIGHT", "amplitude_weight", "1.0",
        _PARSERS["amplitude_weight"], "a number >= 0",
        "Weight of ln(std of the smoothed signal) beside the shape (shape features; 0 ignores size).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_SIMILARITY_SCALE", "similarity_scale", "20.0",
        _PARSERS["similarity_scale"], "a number > 0",
        "Profile distance that divides the similarity by e, in the signal's unit for deviation "
        "features (20 V suits mains volts; amperes need less); shape distances lie in [0, 2].",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_CLUSTER_SCOPE", "cluster_scope", "device",
        _PARSERS["cluster_scope"], "one of device, shared",
        "Clusters per device, or one set shared by the fleet (labels shared/kN).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_SHAPE_PARTS", "shape_parts", "wave",
        _PARSERS["shape_parts"], "one of wave, wave+quantiles",
        "A shape profile's parts beside the log amplitude: the resampled waveform, or also its "
        "sorted values resampled alike (blind to where in the signal an event starts).",
    ),
)  # fmt: skip
SCHEMA = HyperparameterSet("HARNESS_CANDIDATE_", BASE_MODEL_VERSION, HYPERPARAMETERS)
