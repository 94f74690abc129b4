"""Tiny algorithms hosted through `harness worker MODULE:FACTORY` in integration tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence

from harness.clustering import Assignment, WorkerContext
from harness.contracts import SignalReceived


def by_device(context: WorkerContext) -> Callable[[SignalReceived], str | None]:
    """A plain function, hosted unchanged: one cluster per device."""
    return lambda signal: f"device:{signal.meta.device_id}"


class RaisesOnNegative:
    model_version = "raises-on-negative"
    replay_safe = True  # stateless: a failed batch may be retried one signal at a time

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        for signal in signals:
            if float(signal.samples.min()) < 0:
                raise ValueError(f"negative voltage in {signal.signal_id}")
        return [Assignment.clustered(f"device:{s.meta.device_id}") for s in signals]


def raises_on_negative() -> RaisesOnNegative:
    return RaisesOnNegative()


def sleeps(context: WorkerContext) -> Callable[[SignalReceived], str | None]:
    """One cluster per device, after HARNESS_TEST_SLEEP_MS per signal: a slow model."""
    delay_s = float(context.env.get("HARNESS_TEST_SLEEP_MS", "1")) / 1000.0

    def assign(signal: SignalReceived) -> str:
        time.sleep(delay_s)
        return f"device:{signal.meta.device_id}"

    return assign


def exits_on(context: WorkerContext) -> Callable[[SignalReceived], str | None]:
    """Kills its own process (os._exit) on the signal whose id is HARNESS_TEST_POISON_ID."""
    poison = context.env["HARNESS_TEST_POISON_ID"]

    def assign(signal: SignalReceived) -> str:
        if signal.signal_id == poison:
            os._exit(3)
        return f"device:{signal.meta.device_id}"

    return assign


class OnlineLearner:
    """An in-memory online learner with the SDK's state hooks: one cluster per (device, level band),
    numbered in order of appearance; counts how often it learned each signal."""

    def __init__(self, version: str = "online-learner-1") -> None:
        self.model_version = version
        self.clusters: dict[str, int] = {}
        self.learned: dict[str, int] = {}

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        assignments = []
        for signal in signals:
            self.learned[signal.signal_id] = self.learned.get(signal.signal_id, 0) + 1
            if float(signal.samples.min()) < 0:
                raise ValueError(f"cannot learn {signal.signal_id}")
            key = f"{signal.meta.device_id}/{int(float(signal.samples.mean()) // 10)}"
            is_new = key not in self.clusters
            if is_new:
                self.clusters[key] = len(self.clusters) + 1
            assignments.append(Assignment.clustered(f"k{self.clusters[key]}", is_new))
        return assignments

    def snapshot(self) -> bytes:
        return json.dumps(self.clusters).encode()

    def restore(self, state: bytes) -> None:
        self.clusters = {str(k): int(v) for k, v in json.loads(state).items()}


def online_learner(context: WorkerContext) -> OnlineLearner:
    return OnlineLearner(context.env.get("HARNESS_TEST_LEARNER_VERSION", "online-learner-1"))


def oracle(context: WorkerContext) -> Callable[[SignalReceived], str | None]:
    """Labels each signal by its true kind: the best possible candidate on the truth (a real worker must
    never read `meta.kind`), and one that disagrees with legacy's per-device clusters."""
    return lambda signal: f"kind:{signal.meta.true_kind}"
