"""The lease keeper: stopping it waits for a renewal in flight, so none lands after the lease is released."""

from __future__ import annotations

import threading
from typing import cast

from harness.runtime.worker import _LeaseKeeper
from harness.transport.base import Transport
from tests.support.processes import wait_for


class SlowRenewals:
    """A transport whose renewals wait until the test lets them finish."""

    def __init__(self) -> None:
        self.renewing = threading.Event()
        self.finish = threading.Event()
        self.finished = 0

    def renew_lease(self) -> bool:
        self.renewing.set()
        self.finish.wait(timeout=30)
        self.finished += 1
        return True


def test_stop_returns_only_after_the_renewal_in_flight() -> None:
    transport = SlowRenewals()
    keeper = _LeaseKeeper(cast(Transport, transport), 0.01, lambda: None)
    keeper.start()
    assert transport.renewing.wait(timeout=30)

    def release_once_stop_was_asked() -> None:
        wait_for(keeper._stop_event.is_set, 30, "stop() to be called")
        transport.finish.set()

    releaser = threading.Thread(target=release_once_stop_was_asked, daemon=True)
    releaser.start()
    keeper.stop()
    assert transport.finished == 1, "stop() returned while a renewal was still in flight"
    assert not keeper.is_alive()
    releaser.join(timeout=30)
