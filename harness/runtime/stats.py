"""What a worker has done so far, kept apart from building results; and the hooks an observer gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.runtime.pipeline import BatchPlan
from harness.transport.base import Backlog, CommitOutcome


@dataclass
class RuntimeStats:
    batches: int = 0
    processed: int = 0
    errors: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    published_to_production: int = 0
    infrastructure_retries: int = 0  # store errors the worker backed off from (nothing published for them)
    by_outcome: dict[str, int] = field(default_factory=dict)

    def record(self, plan: BatchPlan, outcome: CommitOutcome) -> None:
        if outcome.already_committed:
            return  # a retried commit whose first attempt landed: counted then
        self.batches += 1
        self.processed += len(plan.commit.acked)
        self.redelivered += sum(1 for delivery in plan.commit.acked if delivery.redelivered)
        self.errors += len(plan.rejections)
        self.dead_lettered += len(plan.commit.dead_letters)
        self.published_to_production += outcome.published
        for name, count in plan.outcomes.items():
            self.by_outcome[name] = self.by_outcome.get(name, 0) + count


class WorkerObserver:
    """What the runtime tells an observer such as harness.metrics, like Dramatiq's middleware hooks.

    Every hook is a no-op here; an observer overrides the ones it needs. Hooks only watch: they
    never change what the loop does, and they are called on the loop's thread (the lease hook
    also on the lease keeper's)."""

    def batch_committed(self, plan: BatchPlan, outcome: CommitOutcome, seconds: float, published_ms: float) -> None:
        """A batch was committed (or found already committed), `seconds` after it was read;
        `published_ms` is the commit's time on the store's clock, as the results' entered_at_ms."""

    def store_error(self, during: str) -> None:
        """A store error that the runtime backs off from, during read, plan, commit, lease, state or control."""

    def heartbeat(self, backlog: Callable[[], Backlog | None]) -> None:
        """Once a second; `backlog()` asks the store (None when it cannot answer now)."""

    def lease_changed(self, held: bool) -> None:
        """The worker acquired its lease, lost it, or let it go on exit."""
