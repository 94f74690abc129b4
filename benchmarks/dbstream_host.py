"""River's DBSTREAM hosted through the SDK: `harness worker benchmarks.dbstream_host:create` (from the
repository root, with PYTHONPATH=.). Needs `pip install river` (the `bench` extra).

Each signal is turned into a small feature dict, learned once (`learn_one`) and labelled with the
macro-cluster `predict_one` gives right after. Settings come from HARNESS_DBSTREAM_* variables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.clustering import Assignment, WorkerContext
from harness.contracts import SignalReceived
from workers.candidate.domain.features import tumbling_mean
from workers.candidate.domain.settings import Settings
from workers.candidate.domain.shape import resample, shape_profiles

Features = Callable[[np.ndarray], dict[int, float]]
RESAMPLED_LENGTH = 32  # points of the "resampled" features
SHAPE = Settings()  # the "shape" features are the candidate's, at its default window, length and weight
DEFAULTS = {  # HARNESS_DBSTREAM_<NAME>: river's own defaults, and "stats" features
    "FEATURES": "stats",
    "CLUSTERING_THRESHOLD": "1.0",
    "FADING_FACTOR": "0.01",
    "CLEANUP_INTERVAL": "2",
    "INTERSECTION_FACTOR": "0.3",
    "MINIMUM_WEIGHT": "1.0",
}


def stats(samples: np.ndarray) -> dict[int, float]:
    """Mean, std, min, max and mean |diff| of the raw samples: what a first host would feed it."""
    x = samples.astype(np.float64)
    roughness = float(np.abs(np.diff(x)).mean()) if x.size > 1 else 0.0
    return dict(enumerate([float(x.mean()), float(x.std()), float(x.min()), float(x.max()), roughness]))


def resampled(samples: np.ndarray) -> dict[int, float]:
    """The raw samples at RESAMPLED_LENGTH evenly spaced points."""
    return dict(enumerate(resample(samples.astype(np.float64)[None, :], RESAMPLED_LENGTH)[0].tolist()))


def shape(samples: np.ndarray) -> dict[int, float]:
    """The candidate's shape profile of the smoothed signal: tells the features' share from the learner's."""
    smoothed = tumbling_mean(samples[None, :], SHAPE.window_size)[0]
    return dict(enumerate(shape_profiles([smoothed], SHAPE.shape_length, SHAPE.amplitude_weight)[0].tolist()))


FEATURES: dict[str, Features] = {"stats": stats, "resampled": resampled, "shape": shape}


class DBStreamAlgorithm:
    """Not replay-safe: DBSTREAM cannot unlearn, so a failed batch must not be fed to it again."""

    replay_safe = False

    def __init__(self, model: Any, features: Features, model_version: str) -> None:
        self._model = model
        self._features = features
        self.model_version = model_version
        self._seen: set[int] = set()

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        assignments = []
        for signal in signals:
            try:
                x = self._features(signal.samples)
                self._model.learn_one(x)
                cluster = int(self._model.predict_one(x))
            except Exception as exc:  # one signal's failure must not cost the batch its outcomes
                assignments.append(Assignment.error(type(exc).__name__, str(exc)))
                continue
            assignments.append(Assignment.clustered(f"m{cluster}", cluster not in self._seen))
            self._seen.add(cluster)
        return assignments


def settings_from(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env.get(f"HARNESS_DBSTREAM_{name}", "").strip() or default for name, default in DEFAULTS.items()}


def create(context: WorkerContext) -> DBStreamAlgorithm:
    try:
        from river import cluster  # optional: only the benchmark's `bench` extra installs it
    except ImportError:
        raise RuntimeError("River is not installed: pip install -e '.[bench]' (or pip install river)") from None
    chosen = settings_from(context.env)
    if chosen["FEATURES"] not in FEATURES:
        raise ValueError(f"HARNESS_DBSTREAM_FEATURES must be one of {', '.join(FEATURES)}, got {chosen['FEATURES']!r}")
    model = cluster.DBSTREAM(
        clustering_threshold=float(chosen["CLUSTERING_THRESHOLD"]),
        fading_factor=float(chosen["FADING_FACTOR"]),
        cleanup_interval=float(chosen["CLEANUP_INTERVAL"]),
        intersection_factor=float(chosen["INTERSECTION_FACTOR"]),
        minimum_weight=float(chosen["MINIMUM_WEIGHT"]),
    )
    digest = hashlib.sha256(repr(sorted(chosen.items())).encode()).hexdigest()[:8]
    return DBStreamAlgorithm(model, FEATURES[chosen["FEATURES"]], f"dbstream+{digest}")
