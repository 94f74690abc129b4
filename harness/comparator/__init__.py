"""The pure comparator core: joins legacy and candidate results by id and measures how they differ."""

from harness.comparator.state import ComparatorState

__all__ = ["ComparatorState"]
