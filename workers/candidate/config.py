"""Candidate hyperparameters from HARNESS_CANDIDATE_* environment variables, validated at start."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from harness.errors import ConfigurationError
from workers.candidate.domain.settings import Centroid, NegativeVoltage, Settings

BASE_MODEL_VERSION = "candidate-1.0"


class ConfigError(ValueError, ConfigurationError):
    """A hyperparameter variable with a value the candidate cannot run with; the message names it."""


@dataclass(frozen=True)
class Hyperparameter:
    env: str
    setting: str  # the Settings field it fills
    default: str
    rule: str  # what a valid value is, as said in error messages
    description: str


HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter(
        "HARNESS_CANDIDATE_WINDOW_SIZE", "window_size", "10", "an integer >= 1",
        "Samples per tumbling smoothing window (after downsampling).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_NOISE_THRESHOLD", "noise_threshold", "1.5", "a number > 0",
        "Volts RMS of (smoothed - reference) below which a signal is normal.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_SIMILARITY_THRESHOLD", "similarity_threshold", "0.5", "a number in (0, 1]",
        "Minimum similarity exp(-distance / 20 V) for an anomaly to join an existing cluster.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_NEGATIVE_VOLTAGE", "negative_voltage", "keep", "one of keep, clip, reject",
        "Samples below 0 V: keep them, clip them to 0, or decline the whole signal.",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_DOWNSAMPLE", "downsample", "1", "an integer >= 1",
        "Keep every k-th sample before smoothing (1 keeps all).",
    ),
    Hyperparameter(
        "HARNESS_CANDIDATE_CENTROID", "centroid", "first", "one of first, mean",
        "A cluster's representative: its first member's profile, or the running mean of its members.",
    ),
)  # fmt: skip


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from `env`; an unset or blank variable takes its default. Raises ConfigError."""
    values: dict[str, Any] = {}
    for parameter in HYPERPARAMETERS:
        raw = env.get(parameter.env, "").strip() or parameter.default
        try:
            values[parameter.setting] = _PARSERS[parameter.setting](raw)
        except ValueError:
            raise ConfigError(f"{parameter.env} must be {parameter.rule}, got {raw!r}") from None
    return Settings(**values)


def model_version(settings: Settings) -> str:
    """ "candidate-1.0" with the defaults, else suffixed with a short hash of what was changed."""
    default = Settings()
    changed = sorted(
        f"{field.name}={getattr(settings, field.name)}"
        for field in fields(Settings)
        if getattr(settings, field.name) != getattr(default, field.name)
    )
    if not changed:
        return BASE_MODEL_VERSION
    digest = hashlib.sha256("\n".join(changed).encode()).hexdigest()[:8]
    return f"{BASE_MODEL_VERSION}+{digest}"


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
}
