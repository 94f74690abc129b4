"""Writes tests/threshold/signals.jsonl: the signals the business threshold cases (cases.toml) refer to.

Deterministic (fixed seed, samples quantised to 1/16 V so the JSON is short and exact). Run from the
repository root: `python tests/threshold/make_cases.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.contracts import SignalMeta, SignalReceived
from harness.producer.files import write_signals

HERE = Path(__file__).resolve().parent
SAMPLES = 200
RATE_HZ = 200.0
QUANTUM = 16.0  # samples are multiples of 1/16 V: exact in float32 and short in JSON
DEVICES = {"thr-a": 231.0, "thr-b": 228.0}  # nominal volts

Wave = np.ndarray


def _normal(rng: np.random.Generator, level: float) -> Wave:
    return level + rng.normal(0.0, 0.8, SAMPLES)


def _sag(rng: np.random.Generator, level: float) -> Wave:
    wave = _normal(rng, level)
    start = 60 + int(rng.integers(-4, 5))
    wave[start : start + 80] -= 92.0 + rng.uniform(-2.0, 2.0)
    return wave


def _swell(rng: np.random.Generator, level: float) -> Wave:
    wave = _normal(rng, level)
    start = 60 + int(rng.integers(-4, 5))
    wave[start : start + 80] += 35.0 + rng.uniform(-1.5, 1.5)
    return wave


def _dropout(rng: np.random.Generator, level: float) -> Wave:
    wave = _normal(rng, level)
    wave[50:150] = 5.0 + np.abs(rng.normal(0.0, 0.5, 100))
    return wave


def _glitch(rng: np.random.Generator, level: float) -> Wave:
    """Three samples read below 0 V, one in each of three smoothing windows."""
    wave = _normal(rng, level)
    for window in (3, 9, 15):
        wave[window * 10 + int(rng.integers(0, 10))] = -60.0 + rng.uniform(-1.0, 1.0)
    return wave


def _spike(rng: np.random.Generator, level: float) -> Wave:
    """A damped oscillation after a switching event; it starts on a smoothing-window boundary."""
    wave = _normal(rng, level)
    t = np.arange(12, dtype=np.float64)
    wave[90:102] += (180.0 + rng.uniform(-5.0, 5.0)) * np.exp(-t / 6.0) * np.cos(2 * np.pi * 0.05 * t)
    return wave


SHAPES: dict[str, Callable[[np.random.Generator, float], Wave]] = {
    "normal": _normal, "sag": _sag, "swell": _swell, "dropout": _dropout,
    "negative_glitch": _glitch, "transient_spike": _spike,
}  # fmt: skip

# (signal id, device, kind), in the order the worker sees them
PLAN = [
    ("a-normal-1", "thr-a", "normal"), ("b-normal-1", "thr-b", "normal"),
    ("a-sag-1", "thr-a", "sag"), ("a-normal-2", "thr-a", "normal"),
    ("a-swell-1", "thr-a", "swell"), ("b-spike-1", "thr-b", "transient_spike"),
    ("a-sag-2", "thr-a", "sag"), ("b-sag-1", "thr-b", "sag"),
    ("a-glitch-1", "thr-a", "negative_glitch"), ("a-normal-3", "thr-a", "normal"),
    ("a-swell-2", "thr-a", "swell"), ("a-dropout-1", "thr-a", "dropout"),
    ("b-normal-2", "thr-b", "normal"), ("b-spike-2", "thr-b", "transient_spike"),
    ("a-sag-3", "thr-a", "sag"), ("a-glitch-2", "thr-a", "negative_glitch"),
    ("a-swell-3", "thr-a", "swell"), ("a-normal-4", "thr-a", "normal"),
    ("a-glitch-3", "thr-a", "negative_glitch"), ("b-spike-3", "thr-b", "transient_spike"),
    ("a-sag-4", "thr-a", "sag"), ("b-normal-3", "thr-b", "normal"),
]  # fmt: skip


def make_signals(seed: int = 20240601) -> list[SignalReceived]:
    rng = np.random.default_rng(seed)
    signals = []
    for index, (signal_id, device, kind) in enumerate(PLAN):
        wave = np.round(SHAPES[kind](rng, DEVICES[device]) * QUANTUM) / QUANTUM
        meta = SignalMeta(device, "v", {"site": "threshold"}, kind)
        signals.append(SignalReceived(signal_id, meta, RATE_HZ, 1.7e9 + index, wave.astype(np.float32)))
    return signals


if __name__ == "__main__":
    written = write_signals(HERE / "signals.jsonl", make_signals())
    print(f"wrote {written} signals to {HERE / 'signals.jsonl'}")
