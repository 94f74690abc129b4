"""freeze_startup_heap: start-up objects leave the collector's reach; start-up garbage is freed first."""

from __future__ import annotations

import gc
import weakref

from harness.runtime.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def test_a_cycle_dropped_before_the_freeze_is_collected_and_live_objects_are_frozen() -> None:
    garbage = _Node()
    garbage.peer = garbage  # a reference cycle: only the collector can free it
    dropped = weakref.ref(garbage)
    del garbage
    kept = _Node()
    try:
        freeze_startup_heap()
        assert dropped() is None
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # frozen objects are not tracked by generation
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())
