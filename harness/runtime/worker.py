"""The worker loop: read a batch, run the pipeline, commit; back off on store errors; never stop on bad input.

It knows only the Transport port: Redis, pub/sub and the in-memory broker look the same to it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from harness.clustering import ClusteringAlgorithm, snapshots_of
from harness.contracts import DEFAULT_MAX_SAMPLES
from harness.runtime.pipeline import BatchPlan, plan_batch
from harness.runtime.results import DEFAULT_DEAD_LETTER_PAYLOAD_BYTES, ResultBuilder
from harness.runtime.stats import RuntimeStats, WorkerObserver
from harness.transport.base import DEFAULT_LEASE_TTL_S, CommitOutcome, Delivery, Heartbeat, Transport
from harness.transport.clock import StoreClock
from harness.transport.errors import TransportError, TransportFenced

log = logging.getLogger("harness.worker")

DEFAULT_BATCH_SIZE = 500
DEFAULT_BLOCK_MS = 1_000
DEFAULT_MAX_DELIVERIES = 5  # an entry delivered this many times without an ack is poison
CLOCK_RESYNC_S = 30.0  # how often the worker re-reads the store's clock to correct its own
HEARTBEAT_EVERY_S = 1.0  # also how often the drain flag is checked
MAX_BACKOFF_S = 5.0
KEEPER_JOIN_S = 5.0  # how long a stopping runtime waits for a lease renewal in flight

T = TypeVar("T")

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_BLOCK_MS", "DEFAULT_MAX_DELIVERIES", "RuntimeSettings",
           "RuntimeStats", "WorkerObserver", "WorkerRuntime"]


@dataclass(frozen=True)
class RuntimeSettings:
    worker_name: str
    batch_size: int = DEFAULT_BATCH_SIZE
    block_ms: int = DEFAULT_BLOCK_MS
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    max_samples: int = DEFAULT_MAX_SAMPLES
    exit_when_idle_s: float | None = None  # for drains and benchmarks: stop once input dries up
    lease_ttl_s: float | None = DEFAULT_LEASE_TTL_S  # None: no lease (backtests, where nothing else runs)
    dead_letter_payload_bytes: int = DEFAULT_DEAD_LETTER_PAYLOAD_BYTES
    reset_state: bool = False  # start fresh even if the stored state belongs to another model version
    lease_wait_s: float | None = None  # how long to wait for a lease another holds; None: one TTL and a second


class WorkerRuntime:
    def __init__(self, transport: Transport, algorithm: ClusteringAlgorithm, settings: RuntimeSettings,
                 observer: WorkerObserver | None = None) -> None:
        self._transport = transport
        self._observer = observer or WorkerObserver()  # metrics, when served: it only watches
        self._algorithm = algorithm
        self._settings = settings
        self._builder = ResultBuilder(settings.worker_name, algorithm.model_version)
        self._stopping = threading.Event()
        self._clock = StoreClock(transport.server_time_ms, CLOCK_RESYNC_S)
        self._last_beat = -HEARTBEAT_EVERY_S
        self._lease_lost = False
        self._snapshots = snapshots_of(algorithm)
        self._last_snapshot: bytes | None = None  # the state as of the last commit, to roll back to
        self._prepared = False
        self.stats = RuntimeStats()

    @property
    def lease_lost(self) -> bool:
        return self._lease_lost

    def request_stop(self, *_: object) -> None:
        """Finish the batch in hand, ack it, then leave the loop (SIGTERM, SIGINT)."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> RuntimeStats:
        """Hold the lease, then loop until stopped, drained, idle past the limit, or fenced."""
        name = self._settings.worker_name
        keeper = self._start_lease()
        log.info("worker started", extra={"worker": name, "model_version": self._algorithm.model_version})
        try:
            if not self._stopping.is_set():
                self.prepare()
            self._wait_while_drained()
            self._loop()
            self._finish_read_ahead()
        except TransportFenced as exc:
            self._lease_lost = True
            log.error("lease lost: another copy owns this worker now; exiting", extra={"worker": name,
                                                                                     "error": str(exc)})
        finally:
            if keeper is not None:
                keeper.stop()
            self._best_effort(lambda: self._transport.beat(self._heartbeat("stopped")))
            if not self._lease_lost:
                self._best_effort(self._transport.release_lease)
            self._transport.release()
            self._observer.lease_changed(False)
        log.info("worker stopped", extra={"worker": name, **vars(self.stats)})
        return self.stats

    def _loop(self) -> None:
        idle_since: float | None = None
        while not self._stopping.is_set() and not self._lease_lost:
            if self._heartbeat_due() and self._drain_requested():
                return
            deliveries = self._with_backoff(lambda: self._read(self._settings.block_ms), "read")
            if deliveries is None:
                return
            if deliveries:
                idle_since = None
                self.process(deliveries)
                continue
            idle_since = idle_since or time.monotonic()
            limit = self._settings.exit_when_idle_s
            if limit is not None and time.monotonic() - idle_since >= limit:
                return

    def _finish_read_ahead(self) -> None:
        # A read sent ahead has delivered its entries to this consumer already: process them before
        # leaving, as the batch in hand is, so that a stop or a drain leaves nothing pending.
        if self._lease_lost:
            return
        deliveries = self._best_effort(self._transport.take_read_ahead)
        if deliveries:
            self.process(deliveries)

    def prepare(self) -> None:
        """Tie the stored state to this model version and resume the algorithm from its snapshot."""
        version = self._algorithm.model_version
        snapshot = self._with_backoff(
            lambda: self._transport.bind_model_version(version, self._settings.reset_state), "state")
        if self._snapshots is not None:
            if snapshot is not None:
                self._snapshots.restore(snapshot)
                log.info("model state restored from its snapshot", extra={
                    "worker": self._settings.worker_name, "model_version": version, "bytes": len(snapshot)})
            self._last_snapshot = self._snapshots.snapshot()
        self._prepared = True

    def step(self) -> int:
        """Read and process one batch without waiting; the number of entries processed (backtests)."""
        if not self._prepared:
            self.prepare()
        deliveries = self._with_backoff(lambda: self._read(0), "read")
        if deliveries:
            self.process(deliveries)
        return len(deliveries or ())

    def process(self, deliveries: Sequence[Delivery]) -> None:
        """Plan the batch and commit it. A store error retries the SAME batch in hand (never re-read,
        so valid entries are not counted as poison); nothing is published until the commit lands."""
        started = time.perf_counter()
        plan = self._with_backoff(lambda: self._plan(deliveries), "plan")
        if plan is None:
            return  # stopping while the store is down: the batch stays pending and is read again
        outcome = self._with_backoff(lambda: self._commit(plan), "commit")
        if outcome is None:
            return
        self.stats.record(plan, outcome)
        self._observer.batch_committed(plan, outcome, time.perf_counter() - started, self._now_ms())
        if plan.commit.model_state is not None:
            self._last_snapshot = plan.commit.model_state
        for rejection in plan.rejections:
            log.warning("message rejected", extra={
                "worker": self._settings.worker_name, "signal_id": rejection.joinable_id,
                "reason": rejection.reason, "detail": rejection.detail[:300], "entry": rejection.delivery.entry_id})
        log.info("batch committed", extra={
            "worker": self._settings.worker_name, "signals": len(deliveries), "clustered": len(plan.clustered),
            "dead_lettered": len(plan.commit.dead_letters), "primary": outcome.is_primary, "epoch": outcome.epoch,
            "ms": round((time.perf_counter() - started) * 1000.0, 2),
        })

    def _plan(self, deliveries: Sequence[Delivery]) -> BatchPlan:
        self._sync_clock()
        return plan_batch(
            deliveries, self._algorithm, self._builder, sightings=self._transport.first_sightings,
            classify=self._transport.classify, now_ms=self._now_ms, max_deliveries=self._settings.max_deliveries,
            max_samples=self._settings.max_samples, dead_letter_payload_bytes=self._settings.dead_letter_payload_bytes,
            rollback=self._rollback if self._snapshots is not None else None,
            snapshot=self._snapshots.snapshot if self._snapshots is not None else None,
        )

    def _rollback(self) -> None:
        if self._snapshots is not None and self._last_snapshot is not None:
            self._snapshots.restore(self._last_snapshot)

    def _commit(self, plan: BatchPlan) -> CommitOutcome:
        try:
            return self._transport.commit(plan.commit)
        except TransportFenced:
            # The lease may only have expired while the store was away, with no one taking it:
            # renewing re-establishes it then, and refuses if another copy holds it.
            if self._settings.lease_ttl_s is None or not self._transport.renew_lease():
                raise
            return self._transport.commit(plan.commit)

    def _read(self, block_ms: int) -> list[Delivery]:
        try:
            return self._transport.read(self._settings.batch_size, block_ms)
        except TransportError:
            # A read whose reply was lost may have handed entries to this consumer: read them again.
            self._transport.reset()
            raise

    def _with_backoff(self, action: Callable[[], T], what: str) -> T | None:
        """Run `action`, backing off and retrying on store errors until it succeeds or the worker stops."""
        try:
            return action()  # the hot path: no retry machinery unless the store fails
        except TransportFenced:
            raise
        except TransportError as exc:
            self._log_store_error(exc, what)
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, TransportError)
                                     and not isinstance(exc, TransportFenced)),
            wait=wait_random_exponential(multiplier=0.1, max=MAX_BACKOFF_S),
            stop=lambda _: self._stopping.is_set() or self._lease_lost,
            before_sleep=lambda state: self._backing_off(state, what),
            reraise=True,
        )
        try:
            return retrying(action)
        except TransportFenced:
            raise
        except TransportError:
            if self._stopping.is_set() or self._lease_lost:
                return None
            raise

    def _log_store_error(self, error: BaseException | None, what: str, attempt: int = 0,
                         wait_s: float = 0.0) -> None:
        self.stats.infrastructure_retries += 1
        self._observer.store_error(what)
        log.warning("store error: nothing published for the batch in hand; retrying", extra={
            "worker": self._settings.worker_name, "during": what, "error": str(error), "attempt": attempt,
            "retry_in_s": round(wait_s, 2)})
        self._best_effort(lambda: self._transport.beat(self._heartbeat("backing-off", str(error))))

    def _backing_off(self, state: RetryCallState, what: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._log_store_error(error, what, state.attempt_number,
                              state.next_action.sleep if state.next_action else 0.0)

    def _start_lease(self) -> _LeaseKeeper | None:
        ttl = self._settings.lease_ttl_s
        if ttl is None:
            return None
        # A store that is down or full at start is waited for, like any store error; a live holder is not.
        wait_s = ttl + 1.0 if self._settings.lease_wait_s is None else self._settings.lease_wait_s
        token = self._with_backoff(lambda: self._transport.acquire_lease(ttl, wait_s=wait_s), "lease")
        if token is None:
            return None  # stopped while waiting for the store
        log.info("lease acquired", extra={"worker": self._settings.worker_name, "token": token})
        self._observer.lease_changed(True)
        keeper = _LeaseKeeper(self._transport, ttl / 3.0, self._on_lease_lost)
        keeper.start()
        return keeper

    def _on_lease_lost(self) -> None:
        self._lease_lost = True
        self._observer.lease_changed(False)
        log.error("lease lost: another copy owns this worker now; stopping",
                  extra={"worker": self._settings.worker_name})

    def _wait_while_drained(self) -> None:
        # Started again after a cutover drained it (a restart policy, a stray `up`): idle instead
        # of exiting, so nothing restarts it in a loop; a rollback clears the flag and it resumes.
        if not self._with_backoff(self._transport.drain_requested, "control"):
            return
        log.warning("this worker was drained by a cutover: idle until `harness rollback` clears it",
                    extra={"worker": self._settings.worker_name})
        while not self._stopping.is_set() and self._with_backoff(self._transport.drain_requested, "control"):
            self._best_effort(lambda: self._transport.beat(self._heartbeat("drained")))
            self._observer.heartbeat(lambda: self._best_effort(self._transport.backlog))
            self._stopping.wait(1.0)

    def _heartbeat_due(self) -> bool:
        return time.monotonic() - self._last_beat >= HEARTBEAT_EVERY_S

    def _drain_requested(self) -> bool:
        # Checked with the heartbeat, once a second: production is already fenced by the commit
        # script, so draining a second later costs nothing and saves a round trip per batch.
        self._last_beat = time.monotonic()
        self._best_effort(lambda: self._transport.beat(self._heartbeat("running")))
        self._observer.heartbeat(lambda: self._best_effort(self._transport.backlog))
        if self._best_effort(self._transport.drain_requested):
            log.info("drain requested: the batch in hand was acked, exiting",
                     extra={"worker": self._settings.worker_name})
            return True
        return False

    def _heartbeat(self, state: str, detail: str = "") -> Heartbeat:
        return Heartbeat(state, self._algorithm.model_version, detail[:300])

    @staticmethod
    def _best_effort(action: Callable[[], T]) -> T | None:
        # Informative calls (heartbeat, drain check) never stop the loop: the next batch will meet
        # the same store error and back off properly.
        try:
            return action()
        except TransportError:
            return None

    def _sync_clock(self) -> None:
        self._clock.sync_if_due()

    def _now_ms(self) -> float:
        return self._clock.now_ms()


class _LeaseKeeper(threading.Thread):
    """Renews the lease from the side, so a long batch keeps it; tells the runtime when it is lost."""

    def __init__(self, transport: Transport, every_s: float, on_lost: Callable[[], None]) -> None:
        super().__init__(name="lease-keeper", daemon=True)
        self._transport = transport
        self._every_s = every_s
        self._on_lost = on_lost
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._every_s):
            try:
                kept = self._transport.renew_lease()
            except TransportError:
                continue  # the store is away: the commit script will refuse us if the lease moved meanwhile
            if not kept:
                self._on_lost()
                return

    def stop(self) -> None:
        """Returns once no renewal is in flight (or after KEEPER_JOIN_S, if the store hangs): a renewal that
        landed after the release would hold the lease again for a TTL, or report a false loss."""
        self._stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=KEEPER_JOIN_S)
