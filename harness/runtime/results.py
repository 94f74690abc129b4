"""Builds the SignalClustered result of one input entry, whatever became of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.clustering import Assignment
from harness.contracts import SignalClustered, SignalReceived, pack_result
from harness.transport.base import DeadLetter, Delivery

DEFAULT_DEAD_LETTER_PAYLOAD_BYTES = 4096  # a dead letter keeps this much of the message, plus its size and hash


@dataclass(frozen=True)
class Rejection:
    """An entry that gets an error result and a dead letter instead of a cluster."""

    delivery: Delivery
    signal_id: str | None  # the message's own id when it could be read safely
    reason: str
    detail: str

    @property
    def joinable_id(self) -> str:
        # Both workers derive the same id from the same entry, so the error results still join.
        return self.signal_id or f"entry:{self.delivery.entry_id}"

    def dead_letter(self, payload_cap: int) -> DeadLetter:
        payload = self.delivery.payload
        return DeadLetter(
            self.delivery.entry_id, payload[:payload_cap], self.reason, self.detail[:1000], self.signal_id,
            payload_size=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest(),
        )


@dataclass(frozen=True)
class ResultBuilder:
    worker: str
    model_version: str

    def clustered_wire(self, delivery: Delivery, signal: SignalReceived, assignment: Assignment,
                       published_ms: float, processing_ms: float) -> bytes:
        """The encoded result of a signal the algorithm saw (not built as a SignalClustered: the hot path)."""
        meta = signal.meta
        return pack_result(
            signal.signal_id, self.worker, self.model_version, assignment.outcome, assignment.label,
            assignment.is_new_cluster, delivery.entered_at_ms, max(published_ms, delivery.entered_at_ms),
            processing_ms, meta.device_id, meta.true_kind, assignment.error_type, assignment.error_message,
            delivery.redelivered, delivery.entry_id, None)

    def rejected(self, rejection: Rejection, published_ms: float) -> SignalClustered:
        delivery = rejection.delivery
        return SignalClustered(
            signal_id=rejection.joinable_id,
            worker=self.worker,
            model_version=self.model_version,
            outcome="error",
            label=None,
            is_new_cluster=False,
            entered_at_ms=delivery.entered_at_ms,
            published_at_ms=max(published_ms, delivery.entered_at_ms),
            processing_ms=0.0,
            error_type=rejection.reason,
            error_message=rejection.detail,
            redelivered=delivery.redelivered,
            input_entry_id=delivery.entry_id,
        )
