"""Transports that carry signals to workers and results out of them (Redis Streams, Redis pub/sub)."""

from harness.transport.base import CommitBatch, CommitOutcome, DeadLetter, Delivery, Transport

__all__ = ["CommitBatch", "CommitOutcome", "DeadLetter", "Delivery", "Transport"]
