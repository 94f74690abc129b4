"""The worker loop: read a batch, decode, cluster, publish and ack; never stop on bad input."""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from harness.clustering import Assignment, ClusteringAlgorithm
from harness.contracts import (
    DEFAULT_MAX_SAMPLES,
    ContractError,
    SignalClustered,
    SignalReceived,
    decode_signal,
    encode_clustered,
    peek_signal_id,
)
from harness.runtime.control import WorkerControl
from harness.runtime.sentry import capture
from harness.transport.base import CommitBatch, DeadLetter, Delivery, Transport

log = logging.getLogger("harness.worker")

DEFAULT_BATCH_SIZE = 500
DEFAULT_BLOCK_MS = 1_000
DEFAULT_MAX_DELIVERIES = 5  # an entry delivered this many times without an ack is poison
CLOCK_RESYNC_S = 30.0  # how often the worker re-reads the Redis clock to correct its own
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class RuntimeSettings:
    worker_name: str
    batch_size: int = DEFAULT_BATCH_SIZE
    block_ms: int = DEFAULT_BLOCK_MS
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    max_samples: int = DEFAULT_MAX_SAMPLES
    exit_when_idle_s: float | None = None  # for drains and benchmarks: stop once input dries up


@dataclass
class RuntimeStats:
    batches: int = 0
    processed: int = 0
    errors: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    published_to_production: int = 0
    reconnects: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Decoded:
    delivery: Delivery
    signal: SignalReceived


class WorkerRuntime:
    def __init__(
        self,
        transport: Transport,
        algorithm: ClusteringAlgorithm,
        settings: RuntimeSettings,
        reconnect: Callable[[], Transport] | None = None,
        control: WorkerControl | None = None,
    ) -> None:
        self._transport = transport
        self._control = control
        self._algorithm = algorithm
        self._settings = settings
        self._reconnect = reconnect
        self._stopping = False
        self._clock_offset_ms = 0.0
        self._clock_synced_at = -CLOCK_RESYNC_S
        self.stats = RuntimeStats()

    def request_stop(self, *_: object) -> None:
        """Finish the batch in hand, ack it, then leave the loop (SIGTERM, SIGINT)."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> RuntimeStats:
        backoff = 0.1
        idle_since: float | None = None
        log.info("worker started", extra={"worker": self._settings.worker_name,
                                          "model_version": self._algorithm.model_version})
        self._wait_while_drained()
        while not self._stopping:
            try:
                if self._drain_requested():
                    break
                deliveries = self._transport.read(self._settings.batch_size, self._settings.block_ms)
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                backoff = self._recover_connection(exc, backoff)
                continue
            if not deliveries:
                idle_since = idle_since or time.monotonic()
                limit = self._settings.exit_when_idle_s
                if limit is not None and time.monotonic() - idle_since >= limit:
                    break
                continue
            idle_since = None
            try:
                self.process_batch(deliveries)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # The batch was not acked, so it is read again from the pending list.
                backoff = self._recover_connection(exc, backoff)
        self._beat("stopped", force=True)
        log.info("worker stopped", extra={"worker": self._settings.worker_name, **vars(self.stats)})
        return self.stats

    def _wait_while_drained(self) -> None:
        # Started again after a cutover drained it (a restart policy, a stray `up`): idle instead
        # of exiting, so nothing restarts it in a loop; a rollback clears the flag and it resumes.
        if self._control is None or not self._control.drain_requested():
            return
        log.warning("this worker was drained by a cutover: idle until `harness rollback` clears it",
                    extra={"worker": self._settings.worker_name})
        while not self._stopping and self._control.drain_requested():
            self._control.beat("drained")
            time.sleep(1.0)

    def _drain_requested(self) -> bool:
        # Checked with the heartbeat, once a second: production is already fenced by the commit
        # script, so draining a second later costs nothing and saves a round trip per batch.
        if self._control is None or not self._control.beat():
            return False
        if self._control.drain_requested():
            log.info("drain requested: the batch in hand was acked, exiting",
                     extra={"worker": self._settings.worker_name})
            return True
        return False

    def _beat(self, state: str, force: bool = False) -> None:
        if self._control is not None:
            with contextlib.suppress(redis.RedisError):  # informative only: never fail a shutdown over it
                self._control.beat(state, force=force)

    def _recover_connection(self, exc: Exception, backoff: float) -> float:
        self.stats.reconnects += 1
        log.warning("redis connection lost, retrying", extra={"error": str(exc), "retry_in_s": backoff})
        time.sleep(backoff * (0.5 + random.random() / 2))
        if self._reconnect is not None:
            try:
                self._transport = self._reconnect()
            except (redis.ConnectionError, redis.TimeoutError):
                return min(backoff * 2, MAX_BACKOFF_S)
        self._transport.reset()
        return min(backoff * 2, MAX_BACKOFF_S)

    def process_batch(self, deliveries: Sequence[Delivery]) -> None:
        started = time.perf_counter()
        self._sync_clock()
        results: list[tuple[str, bytes]] = []
        dead_letters: list[DeadLetter] = []
        decoded: list[_Decoded] = []
        for delivery in deliveries:
            if delivery.redelivered:
                self.stats.redelivered += 1
            if delivery.delivery_count > self._settings.max_deliveries:
                reason, detail = "max_deliveries", f"delivered {delivery.delivery_count} times without an ack"
                self._reject(delivery, peek_signal_id(delivery.payload), reason, detail, results, dead_letters)
                continue
            try:
                signal_received = decode_signal(delivery.payload, self._settings.max_samples)
            except ContractError as exc:
                self._reject(delivery, peek_signal_id(delivery.payload), exc.reason, exc.message,
                             results, dead_letters)
                continue
            except Exception as exc:  # a decoder bug must cost one message, never the worker
                self._reject(delivery, None, "undecodable", f"{type(exc).__name__}: {exc}", results, dead_letters)
                continue
            decoded.append(_Decoded(delivery, signal_received))

        sightings = self._transport.first_sightings([(d.signal.signal_id, d.delivery.entry_id) for d in decoded])
        fresh: list[_Decoded] = []
        for item, first in zip(decoded, sightings, strict=True):
            if first:
                fresh.append(item)
            else:
                detail = f"signal id {item.signal.signal_id!r} was already received on another entry"
                self._reject(item.delivery, item.signal.signal_id, "duplicate_id", detail, results, dead_letters)

        cluster_started = time.perf_counter()
        assignments = self._assign([item.signal for item in fresh])
        per_signal_ms = (time.perf_counter() - cluster_started) * 1000.0 / max(len(fresh), 1)
        published_ms = self._now_ms()
        for item, assignment in zip(fresh, assignments, strict=True):
            result = self._result(item.delivery, item.signal, assignment, published_ms, per_signal_ms)
            results.append((item.delivery.entry_id, encode_clustered(result)))
            log.debug("signal clustered", extra={"signal_id": item.signal.signal_id,
                                                 "outcome": assignment.outcome, "label": assignment.label})
        # Production publishes in input order past a watermark: results must follow the entries.
        position = {delivery.entry_id: index for index, delivery in enumerate(deliveries)}
        results.sort(key=lambda result: position[result[0]])
        outcome = self._transport.commit(CommitBatch(deliveries, results, dead_letters))
        self.stats.batches += 1
        self.stats.processed += len(deliveries)
        self.stats.dead_lettered += len(dead_letters)
        self.stats.published_to_production += outcome.published
        log.info("batch committed", extra={
            "worker": self._settings.worker_name, "signals": len(deliveries), "clustered": len(fresh),
            "dead_lettered": len(dead_letters), "primary": outcome.is_primary, "epoch": outcome.epoch,
            "ms": round((time.perf_counter() - started) * 1000.0, 2),
            "first_signal_id": fresh[0].signal.signal_id if fresh else None,
        })

    def _assign(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        if not signals:
            return []
        try:
            assignments = self._algorithm.assign_batch(signals)
            if len(assignments) != len(signals):
                raise RuntimeError(f"algorithm returned {len(assignments)} assignments for {len(signals)} signals")
            return assignments
        except Exception:
            # Isolate the failing signal(s): the rest of the batch is still clustered.
            return [self._assign_one(s) for s in signals]

    def _assign_one(self, signal_received: SignalReceived) -> Assignment:
        try:
            (assignment,) = self._algorithm.assign_batch([signal_received])
            return assignment
        except Exception as exc:
            log.exception("algorithm failed", extra={"signal_id": signal_received.signal_id})
            capture(exc, signal_received.signal_id, worker=self._settings.worker_name)
            return Assignment.error(type(exc).__name__, str(exc) or type(exc).__name__)

    def _reject(
        self,
        delivery: Delivery,
        signal_id: str | None,
        reason: str,
        detail: str,
        results: list[tuple[str, bytes]],
        dead_letters: list[DeadLetter],
    ) -> None:
        # An undecodable message keeps a joinable id: both workers derive it from the same entry.
        joinable_id = signal_id or f"entry:{delivery.entry_id}"
        dead_letters.append(DeadLetter(delivery.entry_id, delivery.payload, reason, detail, signal_id))
        result = self._result(delivery, None, Assignment.error(reason, detail), self._now_ms(), 0.0,
                              signal_id=joinable_id)
        results.append((delivery.entry_id, encode_clustered(result)))
        self.stats.errors += 1
        log.warning("message rejected", extra={"signal_id": joinable_id, "reason": reason, "detail": detail,
                                               "entry": delivery.entry_id})

    def _result(
        self,
        delivery: Delivery,
        signal_received: SignalReceived | None,
        assignment: Assignment,
        published_ms: float,
        processing_ms: float,
        signal_id: str | None = None,
    ) -> SignalClustered:
        self.stats.by_outcome[assignment.outcome] = self.stats.by_outcome.get(assignment.outcome, 0) + 1
        meta = signal_received.meta if signal_received else None
        return SignalClustered(
            signal_id=signal_id or (signal_received.signal_id if signal_received else ""),
            worker=self._settings.worker_name,
            model_version=self._algorithm.model_version,
            outcome=assignment.outcome,
            label=assignment.label,
            is_new_cluster=assignment.is_new_cluster,
            entered_at_ms=delivery.entered_at_ms,
            published_at_ms=published_ms,
            processing_ms=processing_ms,
            device_id=meta.device_id if meta else None,
            true_kind=meta.true_kind if meta else None,
            error_type=assignment.error_type,
            error_message=assignment.error_message,
            redelivered=delivery.redelivered,
            input_entry_id=delivery.entry_id,
        )

    def _sync_clock(self) -> None:
        now = time.monotonic()
        if now - self._clock_synced_at >= CLOCK_RESYNC_S:
            self._clock_offset_ms = self._transport.server_time_ms() - time.time() * 1000.0
            self._clock_synced_at = now

    def _now_ms(self) -> float:
        return time.time() * 1000.0 + self._clock_offset_ms
