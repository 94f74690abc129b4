"""One batch, step by step: decode -> dedupe -> assign -> encode. No I/O of its own.

Each step is a plain function over the batch, unit-tested on its own; `plan_batch` chains them
and hands the transport one CommitBatch (results in input order, dead letters, acks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.clustering import Assignment, ClusteringAlgorithm, is_replay_safe
from harness.contracts import (
    PEEK_MAX_PAYLOAD_BYTES,
    ContractError,
    SignalReceived,
    decode_signal,
    encode_clustered,
    max_payload_bytes,
    peek_signal_id,
)
from harness.runtime.results import Rejection, ResultBuilder
from harness.runtime.sentry import capture
from harness.transport.base import CommitBatch, Delivery
from harness.transport.errors import TransportError

log = logging.getLogger("harness.worker")

Sightings = Callable[[Sequence[tuple[str, str]]], list[bool]]
Classifier = Callable[[BaseException], TransportError | None]


class Decoded(NamedTuple):  # one per message: a tuple is the cheapest immutable record
    delivery: Delivery
    signal: SignalReceived


@dataclass(frozen=True)
class BatchPlan:
    """What one batch became, before it is committed."""

    commit: CommitBatch
    clustered: Sequence[Decoded]
    rejections: Sequence[Rejection]
    outcomes: dict[str, int] = field(default_factory=dict)


def decode_step(deliveries: Sequence[Delivery], max_deliveries: int,
                max_samples: int) -> tuple[list[Decoded], list[Rejection]]:
    decoded: list[Decoded] = []
    rejected: list[Rejection] = []
    # A rejected message's id is still worth reading up to the larger of the two limits.
    peek_limit = max(PEEK_MAX_PAYLOAD_BYTES, max_payload_bytes(max_samples))
    payload_limit = max_payload_bytes(max_samples)
    for delivery in deliveries:
        if delivery.delivery_count > max_deliveries:
            rejected.append(Rejection(delivery, peek_signal_id(delivery.payload, peek_limit), "max_deliveries",
                                      f"delivered {delivery.delivery_count} times without an ack"))
            continue
        try:
            decoded.append(Decoded(delivery, decode_signal(delivery.payload, max_samples, max_payload=payload_limit)))
        except ContractError as exc:
            rejected.append(Rejection(delivery, peek_signal_id(delivery.payload, peek_limit), exc.reason, exc.message))
        except Exception as exc:  # a decoder bug must cost one message, never the worker
            rejected.append(Rejection(delivery, None, "undecodable", f"{type(exc).__name__}: {exc}"))
    return decoded, rejected


def dedupe_step(decoded: Sequence[Decoded], sightings: Sightings) -> tuple[list[Decoded], list[Rejection]]:
    """A signal id seen before on another entry is a duplicate; on the same entry, a redelivery."""
    verdicts = sightings([(item.signal.signal_id, item.delivery.entry_id) for item in decoded])
    fresh: list[Decoded] = []
    rejected: list[Rejection] = []
    for item, first in zip(decoded, verdicts, strict=True):
        if first:
            fresh.append(item)
        else:
            rejected.append(Rejection(item.delivery, item.signal.signal_id, "duplicate_id",
                                      f"signal id {item.signal.signal_id!r} was already received on another entry"))
    return fresh, rejected


def assign_step(algorithm: ClusteringAlgorithm, signals: Sequence[SignalReceived], classify: Classifier,
                worker: str, rollback: Callable[[], None] | None = None) -> list[Assignment]:
    """One Assignment per signal; `assign_batch` is called once (see harness.clustering's contract).

    An infrastructure error inside the algorithm is raised, not published. A model error costs a
    replay-safe algorithm only its failing signal (retried one at a time); any other algorithm
    gets an error result per signal of the batch, its state rolled back when it keeps snapshots."""
    if not signals:
        return []
    try:
        assignments = algorithm.assign_batch(signals)
        if len(assignments) != len(signals):
            raise RuntimeError(f"algorithm returned {len(assignments)} assignments for {len(signals)} signals")
        return assignments
    except Exception as exc:
        if rollback is not None:
            rollback()  # whatever the batch taught it before failing is forgotten
        _raise_if_infrastructure(exc, classify)
        if is_replay_safe(algorithm):
            return [_assign_one(algorithm, signal, classify, worker) for signal in signals]
        log.exception("algorithm failed on a batch; it is not replay-safe, so every signal of the batch "
                      "gets an error result", extra={"worker": worker, "signals": len(signals)})
        capture(exc, signals[0].signal_id, worker=worker)
        failed = Assignment.error(type(exc).__name__, f"the batch failed: {exc}"[:300])
        return [failed] * len(signals)


def _assign_one(algorithm: ClusteringAlgorithm, signal: SignalReceived, classify: Classifier,
                worker: str) -> Assignment:
    try:
        (assignment,) = algorithm.assign_batch([signal])
        return assignment
    except Exception as exc:
        _raise_if_infrastructure(exc, classify)
        log.exception("algorithm failed", extra={"signal_id": signal.signal_id, "worker": worker})
        capture(exc, signal.signal_id, worker=worker)
        return Assignment.error(type(exc).__name__, str(exc) or type(exc).__name__)


def _raise_if_infrastructure(exc: Exception, classify: Classifier) -> None:
    infrastructure = classify(exc)
    if infrastructure is not None:
        raise infrastructure from exc


def encode_step(deliveries: Sequence[Delivery], clustered: Sequence[Decoded], assignments: Sequence[Assignment],
                rejections: Sequence[Rejection], builder: ResultBuilder, published_ms: float,
                per_signal_ms: float) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """Encoded results in input order (production publishes past a watermark), and counts by outcome."""
    results: list[tuple[str, bytes]] = []
    outcomes: dict[str, int] = {}
    per_signal_log = log.isEnabledFor(logging.DEBUG)
    for item, assignment in zip(clustered, assignments, strict=True):
        delivery = item.delivery
        results.append((delivery.entry_id,
                        builder.clustered_wire(delivery, item.signal, assignment, published_ms, per_signal_ms)))
        outcomes[assignment.outcome] = outcomes.get(assignment.outcome, 0) + 1
        if per_signal_log:
            log.debug("signal clustered", extra={"signal_id": item.signal.signal_id, "outcome": assignment.outcome,
                                                 "label": assignment.label})
    for rejection in rejections:
        results.append((rejection.delivery.entry_id, encode_clustered(builder.rejected(rejection, published_ms))))
        outcomes["error"] = outcomes.get("error", 0) + 1
    if rejections:  # the clustered ones are already in input order
        position = {delivery.entry_id: index for index, delivery in enumerate(deliveries)}
        results.sort(key=lambda result: position[result[0]])
    return results, outcomes


def plan_batch(deliveries: Sequence[Delivery], algorithm: ClusteringAlgorithm, builder: ResultBuilder, *,
               sightings: Sightings, classify: Classifier, now_ms: Callable[[], float], max_deliveries: int,
               max_samples: int, dead_letter_payload_bytes: int, rollback: Callable[[], None] | None = None,
               snapshot: Callable[[], bytes] | None = None) -> BatchPlan:
    decoded, rejected = decode_step(deliveries, max_deliveries, max_samples)
    fresh, duplicates = dedupe_step(decoded, sightings)
    rejected += duplicates
    started = time.perf_counter()
    assignments = assign_step(algorithm, [item.signal for item in fresh], classify, builder.worker, rollback)
    per_signal_ms = (time.perf_counter() - started) * 1000.0 / max(len(fresh), 1)
    results, outcomes = encode_step(deliveries, fresh, assignments, rejected, builder, now_ms(), per_signal_ms)
    letters = [rejection.dead_letter(dead_letter_payload_bytes) for rejection in rejected]
    state = snapshot() if snapshot is not None else None
    return BatchPlan(CommitBatch(deliveries, results, letters, state), fresh, rejected, outcomes)
