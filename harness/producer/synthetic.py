"""Deterministic synthetic voltage signals from a small fleet of devices, each with a labelled kind.

Normal signals are a device's nominal level plus gaussian noise; the anomalies vary in severity
over a wide range, so the online clustering forms several clusters per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harness.contracts import SignalMeta, SignalReceived

KINDS = (
    "normal",
    "sag",
    "swell",
    "transient_spike",
    "dropout",
    "noise_burst",
    "slow_drift",
    "negative_glitch",
)
# Kinds that differ only in waveform shape: a swell that builds up and snaps back, and its time
# reversal (snaps up, decays). Their deviations hold the same values in reverse order, so mean,
# std, min, max and mean |diff| are equal: only a shape-aware model tells them apart.
SHAPE_KINDS = ("ramp_swell", "decay_swell")
NORMAL_SHARE = 0.5  # the other kinds share the rest equally
NOMINAL_VOLTS = 230.0
CHUNK = 256  # signals drawn per generator state, so a longer run starts with the same signals
SECONDS_BETWEEN_SIGNALS = 0.1

Wave = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Device:
    device_id: str
    level: float  # nominal volts
    noise: float  # gaussian noise, volts
    tags: dict[str, str]


def generate_signals(
    count: int,
    seed: int,
    devices: int = 8,
    samples: int = 1000,
    rate_hz: float = 1000.0,
    start_time: float = 1.7e9,
    shape_share: float = 0.0,
) -> Iterator[SignalReceived]:
    """`count` signals, the same ones for the same arguments; ids are f"sig-{seed}-{i:07d}".

    `shape_share` of the signals (drawn from a generator of their own, so every other signal stays
    as it is without them) become one of SHAPE_KINDS, half each.
    """
    if count < 0 or devices < 1 or samples < 1 or not rate_hz > 0 or not 0.0 <= shape_share <= 1.0:
        raise ValueError("count >= 0, devices >= 1, samples >= 1, rate_hz > 0 and 0 <= shape_share <= 1 are required")
    fleet = _fleet(seed, devices)
    weights = np.array([NORMAL_SHARE] + [(1 - NORMAL_SHARE) / (len(KINDS) - 1)] * (len(KINDS) - 1))
    for first in range(0, count, CHUNK):
        rng = np.random.default_rng([seed, first // CHUNK])
        noise = rng.standard_normal((CHUNK, samples), dtype=np.float32)
        owners = rng.integers(devices, size=CHUNK)
        kinds = rng.choice(len(KINDS), size=CHUNK, p=weights)
        offsets = rng.normal(0.0, 0.2, size=CHUNK)  # small signal-to-signal wander of the level
        shape_rng = np.random.default_rng([seed, first // CHUNK, 2])
        reshaped = shape_rng.random(CHUNK) < shape_share
        for j in range(min(CHUNK, count - first)):
            index = first + j
            device = fleet[owners[j]]
            kind = SHAPE_KINDS[int(shape_rng.integers(2))] if reshaped[j] else KINDS[kinds[j]]
            level = np.float32(device.level + offsets[j])
            wave = noise[j] * np.float32(device.noise) + level
            if KINDS[kinds[j]] != "normal":  # drawn even when replaced, so later signals stay the same
                _ANOMALIES[KINDS[kinds[j]]](wave, float(level), rng)
            if kind in SHAPE_KINDS:
                wave = noise[j] * np.float32(device.noise) + level
                _ramp(wave, shape_rng, rising=kind == SHAPE_KINDS[0])
            yield SignalReceived(
                signal_id=f"sig-{seed}-{index:07d}",
                meta=SignalMeta(device.device_id, "v", device.tags, kind),
                sample_rate_hz=rate_hz,
                start_time=start_time + index * SECONDS_BETWEEN_SIGNALS,
                samples=wave,
            )


def _fleet(seed: int, devices: int) -> list[_Device]:
    rng = np.random.default_rng([seed, 1 << 30])
    return [
        _Device(
            device_id=f"dev-{k:02d}",
            level=NOMINAL_VOLTS + float(rng.uniform(-5.0, 5.0)),
            noise=float(rng.uniform(0.8, 1.2)),
            tags={"site": f"site-{'abc'[k % 3]}", "feeder": f"f{k % 4}"},
        )
        for k in range(devices)
    ]


def _segment(length: int, rng: np.random.Generator, low: float, high: float) -> slice:
    """A random stretch covering between `low` and `high` of the signal."""
    size = max(1, int(length * rng.uniform(low, high)))
    start = int(rng.integers(0, length - size + 1))
    return slice(start, start + size)


def _sag(wave: Wave, level: float, rng: np.random.Generator) -> None:
    wave[_segment(len(wave), rng, 0.15, 0.6)] -= np.float32(level * rng.uniform(0.1, 0.45))


def _swell(wave: Wave, level: float, rng: np.random.Generator) -> None:
    wave[_segment(len(wave), rng, 0.15, 0.6)] += np.float32(level * rng.uniform(0.05, 0.25))


def _transient_spike(wave: Wave, level: float, rng: np.random.Generator) -> None:
    """A damped oscillation, as after a switching event."""
    where = _segment(len(wave), rng, 0.06, 0.06)
    t = np.arange(where.stop - where.start, dtype=np.float32)
    amplitude, decay, cycles = rng.uniform(80.0, 250.0), rng.uniform(4.0, 12.0), rng.uniform(0.01, 0.05)
    wave[where] += (amplitude * np.exp(-t / decay) * np.cos(2 * np.pi * cycles * t)).astype(np.float32)


def _dropout(wave: Wave, level: float, rng: np.random.Generator) -> None:
    """The supply falls to a small residual voltage (never below 0 V) for a while."""
    where = _segment(len(wave), rng, 0.02, 0.4)
    residual = np.float32(rng.uniform(1.0, 20.0))
    wave[where] = residual + np.abs(rng.standard_normal(where.stop - where.start, dtype=np.float32))


def _noise_burst(wave: Wave, level: float, rng: np.random.Generator) -> None:
    where = _segment(len(wave), rng, 0.15, 0.5)
    sigma = np.float32(rng.uniform(8.0, 40.0))
    wave[where] += sigma * rng.standard_normal(where.stop - where.start, dtype=np.float32)


def _slow_drift(wave: Wave, level: float, rng: np.random.Generator) -> None:
    span = rng.uniform(10.0, 45.0) * rng.choice([-1.0, 1.0])
    wave += np.linspace(0.0, span, len(wave), dtype=np.float32)


def _negative_glitch(wave: Wave, level: float, rng: np.random.Generator) -> None:
    """A few samples read below 0 V, as from a faulty sensor or a wiring fault."""
    where = rng.choice(len(wave), size=min(len(wave), int(rng.integers(1, 9))), replace=False)
    wave[where] = -rng.uniform(5.0, 120.0, size=len(where)).astype(np.float32)


def _ramp(wave: Wave, rng: np.random.Generator, rising: bool) -> None:
    """A swell of 20-60 V over 20-30% of the signal, rising linearly then snapping back, or reversed.

    It starts at 18-22% of the signal, as in a capture triggered by the event (a pre-trigger window).
    """
    length = len(wave)
    start = int(length * rng.uniform(0.18, 0.22))
    where = slice(start, min(length, start + max(1, int(length * rng.uniform(0.2, 0.3)))))
    burst = np.linspace(0.0, rng.uniform(20.0, 60.0), where.stop - where.start, dtype=np.float32)
    wave[where] += burst if rising else burst[::-1]


_ANOMALIES: dict[str, Callable[[Wave, float, np.random.Generator], None]] = {
    "sag": _sag,
    "swell": _swell,
    "transient_spike": _transient_spike,
    "dropout": _dropout,
    "noise_burst": _noise_burst,
    "slow_drift": _slow_drift,
    "negative_glitch": _negative_glitch,
}
