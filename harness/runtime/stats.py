"""What a worker has done so far, kept apart from building results."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.runtime.pipeline import BatchPlan
from harness.transport.base import CommitOutcome


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
