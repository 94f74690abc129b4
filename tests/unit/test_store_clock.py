"""The store's clock read locally: the offset comes from the shortest of a few TIME round trips."""

from __future__ import annotations

import pytest

from harness.transport import clock as clock_module
from harness.transport.clock import StoreClock


class FakeTime:
    """Local time that the fake store moves forward by each call's round trip."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def time(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s


def test_a_slow_round_trip_is_not_trusted_when_a_faster_one_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    answers: list[float] = []

    def skewed_store() -> float:
        # The first reply comes late: the store read its clock 9 ms into a 10 ms round trip (busy elsewhere).
        trips = [(0.009, 0.001), (0.0001, 0.0001)]
        early, late = trips[min(len(answers), 1)]
        fake.now_s += early
        answer = fake.now_s * 1000.0 + 50.0  # the store is 50 ms ahead
        answers.append(answer)
        fake.now_s += late
        return answer

    clock = StoreClock(skewed_store)
    clock.sync_if_due()
    assert len(answers) == 2, "a slow round trip asks again"
    assert clock.now_ms() - fake.now_s * 1000.0 == pytest.approx(50.0, abs=0.1)


def test_one_quick_round_trip_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    calls: list[float] = []

    def quick_store() -> float:
        fake.now_s += 0.0001
        calls.append(fake.now_s)
        answer = fake.now_s * 1000.0 - 20.0
        fake.now_s += 0.0001
        return answer

    clock = StoreClock(quick_store, resync_s=30.0)
    clock.sync_if_due()
    clock.sync_if_due()  # not due yet: no call
    assert len(calls) == 1
    assert clock.now_ms() - fake.now_s * 1000.0 == pytest.approx(-20.0, abs=0.01)
    fake.now_s += 31.0
    clock.sync_if_due()
    assert len(calls) == 2, "due again after resync_s"
