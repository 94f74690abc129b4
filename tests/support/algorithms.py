"""Tiny algorithms hosted through `harness worker MODULE:FACTORY` in integration tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.clustering import Assignment, WorkerContext
from harness.contracts import SignalReceived


def by_device(context: WorkerContext) -> Callable[[SignalReceived], str | None]:
    """A plain function, hosted unchanged: one cluster per device."""
    return lambda signal: f"device:{signal.meta.device_id}"


class RaisesOnNegative:
    model_version = "raises-on-negative"

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        for signal in signals:
            if float(signal.samples.min()) < 0:
                raise ValueError(f"negative voltage in {signal.signal_id}")
        return [Assignment.clustered(f"device:{s.meta.device_id}") for s in signals]


def raises_on_negative() -> RaisesOnNegative:
    return RaisesOnNegative()
