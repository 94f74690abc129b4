"""The comparator service: reads the workers' results streams, feeds ComparatorState, checkpoints.

Exactly-once counting: the state is persisted and the results read since the last checkpoint
are acked in the same MULTI/EXEC. After a crash the comparator reloads the checkpoint and
re-reads its pending (unacked) results, which the checkpoint has not counted yet.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from harness import experiments
from harness.comparator.lag import LagMeter
from harness.comparator.partitioned import Fence, Write, scoped_settings
from harness.comparator.progress_log import ProgressLog as ProgressLog  # re-exported: callers knew it here
from harness.comparator.reader import PrefetchingReader, has_backlog
from harness.comparator.records import decode_batch, payload
from harness.comparator.scope import StartFilter, experiment_report, produced_in
from harness.comparator.settings import DEFAULT_CHECKPOINT_S as DEFAULT_CHECKPOINT_S
from harness.comparator.settings import DEFAULT_GROUP as DEFAULT_GROUP
from harness.comparator.settings import DEFAULT_MAX_SKEW as DEFAULT_MAX_SKEW
from harness.comparator.settings import DEFAULT_READ_COUNT as DEFAULT_READ_COUNT
from harness.comparator.settings import DEFAULT_STALL_AFTER_S as DEFAULT_STALL_AFTER_S
from harness.comparator.settings import STATE_KEY as STATE_KEY
from harness.comparator.settings import SUMMARY_KEY as SUMMARY_KEY
from harness.comparator.settings import ComparatorSettings as ComparatorSettings
from harness.comparator.settings import Feed as Feed
from harness.comparator.settings import default_feeds as default_feeds
from harness.comparator.settings import settings_for as settings_for
from harness.comparator.state import ComparatorState
from harness.comparator.wire import parse_entries
from harness.experiments import Experiment
from harness.transport import keys
from harness.transport.clock import StoreClock
from harness.transport.errors import TransportError
from harness.transport.redis_errors import PIPELINE_ECHO, translated
from harness.transport.replies import server_time_ms, text
from harness.transport.streams import ensure_group

log = logging.getLogger("harness.comparator")

MAX_BACKOFF_S = 5.0  # the longest wait between two attempts while the store is away
# Results read between two checkpoints, at most: a bound on what a restart reads again. The checkpoint_s clock
# is the usual trigger; a checkpoint costs tens of ms at 1M pairs, so a backlog is not checkpointed per 100k.
CHECKPOINT_EVERY_RESULTS = 1_000_000


def load_state(client: redis.Redis, settings: ComparatorSettings) -> ComparatorState:
    saved = client.get(settings.state_key)
    if saved:
        return ComparatorState.from_bytes(saved)
    return ComparatorState(
        timeout_ms=settings.timeout_ms, max_pending=settings.max_pending, window=settings.window,
        sides=[feed.side for feed in settings.feeds], join=settings.join,
    )


def live_report(client: redis.Redis, experiment: str | None = None, partitions: int = 1) -> dict[str, Any] | None:
    """The harness.report/1 report of an experiment (default: the current one, else the latest), None if
    nothing was compared yet. Dated by the comparator's last checkpoint, so a comparator that died shows
    as stale. Raises ValueError when the saved state is unreadable, ExperimentError for an unknown name."""
    return experiment_report(client, experiments.resolve(client, experiment), partitions)


class ComparatorObserver:
    """What the service tells an observer such as harness.metrics; every hook is a no-op here."""

    def restored(self, counts: Mapping[str, Any]) -> None:
        """The counts of the checkpoint the service starts from, before anything new is read."""

    def checkpointed(self, report: Mapping[str, Any], lag: Mapping[str, Mapping[str, Any]], at_s: float) -> None:
        """A checkpoint landed: the state's report, LagMeter's figures per side, its time (store clock, s)."""


class ComparatorService:
    def __init__(self, client: redis.Redis, settings: ComparatorSettings,
                 observer: ComparatorObserver | None = None, fence: Fence | None = None) -> None:
        self._client = client
        self._clock = StoreClock(lambda: server_time_ms(client))  # a TIME round trip per poll cost 7%
        self._fence = fence  # a shard's partition lease: checkpoints are written only while it holds
        self.lease_lost = False
        # A connection of its own whose stream replies skip redis-py's per-entry dict building.
        self._reader = PrefetchingReader(client)
        self._base = settings
        self._stopping = False
        self._progress_log = ProgressLog()
        self._observer = observer or ComparatorObserver()
        self._watched = observer is not None  # the report costs a little: restored() only when someone watches
        self._serve(self._current() if settings.follow else settings.experiment)

    def _current(self) -> Experiment | None:
        legacy, candidate = (feed.worker or feed.side for feed in self._base.feeds[:2])
        return experiments.current(self._client, legacy, candidate)

    def _serve(self, experiment: Experiment | None) -> None:
        """Compare `experiment` from its checkpoint on (None: idle until one starts)."""
        settings = scoped_settings(self._base if experiment is None else settings_for(self._base, experiment))
        self._reader.drop()  # a request ahead belongs to the group served so far; rewind() follows
        self._settings = settings
        self._idle = settings.follow and experiment is None
        self._by_stream = {feed.stream: feed for feed in settings.feeds}
        self._cursors: dict[str, str] = {}
        self._filter = StartFilter(experiment.start_entry if experiment is not None else "0-0")
        self.state = load_state(self._client, settings)
        self._lag = LagMeter(self._client, settings, lambda: self.state)
        if self._watched:
            self._observer.restored(self.state.report()["counts"])

    @property
    def experiment(self) -> str | None:
        """The name of the experiment served (None while idle)."""
        if self._idle:
            return None
        return self._settings.experiment.name if self._settings.experiment else keys.DEFAULT_EXPERIMENT

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> ComparatorState:
        """Compare until stopped (or idle past the limit). A store error (a Redis restart, a full
        server) never ends the run: it backs off, then resumes from the last checkpoint."""
        try:
            return self._run()
        finally:
            self._reader.drop()  # a request ahead is left unread: the next start rewinds to the checkpoint

    def _run(self) -> ComparatorState:
        if not self._with_backoff(self.rewind):
            self._log_stop("asked to stop before the store answered")
            return self.state
        self._log_start()
        # Decoded results are short-lived; collecting the long-lived startup objects again and
        # again costs more than the comparison itself.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        while True:
            try:
                with translated():
                    self._loop()
                    self.checkpoint()
                self._log_stop("asked to stop" if self._stopping else "idle")
                return self.state
            except TransportError as exc:
                if self._stopping:
                    log.warning("store error at the last checkpoint; the previous one stands",
                                extra={"error": str(exc)})
                    self._log_stop("asked to stop; store error at the last checkpoint")
                    return self.state
                self._log_store_error(exc)
            if not self._with_backoff(self._resume_from_checkpoint):
                self._log_stop("asked to stop while the store was away")
                return self.state

    def _log_start(self) -> None:
        settings = self._settings
        log.info("comparator started", extra={
            "experiment": self.experiment if not self._idle else "none running: waiting for one to start",
            "feeds": {feed.side: feed.stream + (" (tap)" if feed.tap else "") for feed in settings.feeds},
            "join": settings.join, "group": settings.group, "input_stream": settings.input_stream,
            "checkpoint_s": settings.checkpoint_s, "resumed_pending": self.state.pending_count()})

    def _log_stop(self, reason: str) -> None:
        counts = self.state.report()["counts"]  # no Redis call: the store may be what stopped it
        log.info("comparator stopped", extra={"reason": reason, **{key: counts[key] for key in (
            "matched", "missing_legacy", "missing_candidate", "pending", "duplicates", "late", "rejected")}})

    def _loop(self) -> None:
        last_checkpoint = time.monotonic()
        idle_since: float | None = None
        read_since_checkpoint = 0
        while not self._stopping:
            got = self.poll_once()
            read_since_checkpoint += got
            now = time.monotonic()
            idle_since = None if got else idle_since or now
            if now - last_checkpoint >= self._settings.checkpoint_s or read_since_checkpoint > CHECKPOINT_EVERY_RESULTS:
                self.checkpoint()
                last_checkpoint, read_since_checkpoint = now, 0
                if self._settings.follow:
                    self.follow()
            limit = self._settings.exit_when_idle_s
            if limit is not None and idle_since is not None and now - idle_since >= limit:
                break

    def _resume_from_checkpoint(self) -> None:
        # What was read since the last checkpoint is forgotten and read again: the checkpoint and
        # the cursors it stored are the only progress that is certain after a store error.
        self._reader.drop()
        self.state = load_state(self._client, self._settings)
        self.rewind()
        log.info("resumed from the last checkpoint", extra={"cursors": dict(self._cursors)})

    def _with_backoff(self, action: Callable[[], object]) -> bool:
        """Run `action` until it succeeds, backing off on store errors; False when stopped meanwhile."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransportError), wait=wait_random_exponential(0.1, max=MAX_BACKOFF_S),
            stop=lambda _: self._stopping, reraise=True,
            before_sleep=lambda state: self._log_store_error(
                state.outcome.exception() if state.outcome else None, state.attempt_number,
                state.next_action.sleep if state.next_action else 0.0),
        )
        try:
            retrying(lambda: _translated_call(action))
        except TransportError:
            if self._stopping:
                return False
            raise
        return True

    @staticmethod
    def _log_store_error(error: BaseException | None, attempt: int = 0, wait_s: float = 0.0) -> None:
        # redis-py quotes a failed pipeline command with its arguments: the msgpack checkpoint, as bytes.
        line = PIPELINE_ECHO.sub("", str(error))
        log.warning("store error: resuming from the last checkpoint once the store answers",
                    extra={"error": line, "attempt": attempt, "retry_in_s": round(wait_s, 2)})

    def rewind(self) -> None:
        """Point the consumer group of each feed just after what the checkpoint has counted (an experiment's
        start when nothing is counted yet)."""
        if self._idle:
            return
        self._filter.reset()  # what is read again may start before the experiment's start
        saved = {text(k): text(v) for k, v in self._client.hgetall(self._cursor_key).items()}
        has_state = bool(self._client.exists(self._settings.state_key))
        experiment = self._settings.experiment
        for feed in self._settings.feeds:
            start = experiment.results_start(feed.stream) if experiment is not None else "0"
            ensure_group(self._client, feed.stream, self._settings.group, start)
            cursor = saved.get(feed.stream, start) if has_state else start
            self._client.xgroup_setid(feed.stream, self._settings.group, cursor)
            self._cursors[feed.stream] = cursor

    def follow(self) -> None:
        """Switch to the current experiment when another one has started (or idle when none runs): the one
        served is checkpointed, and, if it has ended, its final report kept and its groups removed."""
        current = self._current()
        served = self.experiment
        if self.lease_lost:
            return
        if (current.name if current is not None else None) == served:
            return
        if served is not None:
            self.checkpoint()
            self._finish(served)
        log.info("experiment switched", extra={
            "ended": served, "started": current.name if current else None,
            "control": current.control if current else None, "candidate": current.candidate if current else None})
        self._serve(current)
        self.rewind()

    def _finish(self, name: str) -> None:
        """Keep an ended experiment's final report; its groups and reader cursors go (they would hold back
        trimming the results streams)."""
        ended = experiments.get(self._client, name)
        if ended is None or ended.running:
            return  # its record was replaced meanwhile, or it is served elsewhere: leave it as it is
        partition = self._settings.partition
        report = experiment_report(self._client, ended, partition.count if partition is not None else 1)
        if report is not None:
            experiments.freeze(self._client, ended, report)
        pipe = self._client.pipeline(transaction=False)
        for feed in self._settings.feeds:
            pipe.xgroup_destroy(feed.stream, self._settings.group)
            pipe.hdel(keys.reader_cursors_key(feed.stream), self._settings.group)
        pipe.execute(raise_on_error=False)

    @property
    def _cursor_key(self) -> str:
        return keys.checkpoint_cursors_key(self._settings.state_key)

    def poll_once(self) -> int:
        """Read one round from the feeds; returns how many results were ingested."""
        if self._idle:  # no experiment runs: wait for one to start
            time.sleep(self._settings.block_ms / 1000.0)
            return 0
        # NOACK: the checkpointed cursors are the acknowledgement (see `checkpoint`), so the
        # group keeps no pending list and needs no XACK per result.
        settings = self._settings
        response = self._reader.read(settings.group, self._streams_to_read(), settings.read_count, settings.block_ms)
        if has_backlog(response, settings.read_count):
            # Asked for before this reply is ingested, so flow control sees the state one reply late:
            # the join buffer may hold one more read_count per side than max_skew.
            self._reader.send(settings.group, self._streams_to_read(), settings.read_count, settings.block_ms)
        self._clock.sync_if_due()
        now_ms = self._clock.now_ms()
        got, backlog = self._ingest(response, now_ms)
        self.state.advance(now_ms, caught_up=not backlog)
        return got

    def _streams_to_read(self) -> list[str]:
        """Every feed, unless `max_skew` joins are pending: then only the sides that are behind, so the
        faster side's results wait in Redis, not in memory, until the slower one catches up."""
        bound = min(self._settings.max_skew, self._settings.max_pending // 2)
        if self.state.join_mode != "progress" or self.state.pending_count() < bound:
            return list(self._cursors)
        behind = set(self.state.slowest_sides())
        return [feed.stream for feed in self._settings.feeds if feed.side in behind] or list(self._cursors)

    def _ingest(self, response: Any, now_ms: float) -> tuple[int, bool]:
        """Returns (results ingested, whether some feed has more waiting)."""
        total, backlog = 0, False
        streams = response.items() if isinstance(response, dict) else (response or [])
        for stream_name, entries in streams:
            if not entries:
                continue
            stream = text(stream_name)
            feed = self._by_stream[stream]
            columns = None
            if feed.tap is None and not self._filter.filters(stream):  # a plain batch: no decoding
                columns = parse_entries(entries, self.state.codes(feed.side))
            if columns is not None:
                self.state.ingest_columns(feed.side, columns, now_ms)
            else:
                records = decode_batch(entries) if feed.tap is None else [
                    feed.tap.to_record(payload(fields)) for _, fields in entries]
                self.state.ingest(feed.side, self._filter.keep(stream, records), now_ms)
            self._cursors[stream] = text(entries[-1][0])
            total += len(entries)
            backlog = backlog or len(entries) >= self._settings.read_count
        return total, backlog

    def checkpoint(self) -> None:
        """Persist the state and the cursors of what it has counted, in one transaction (a shard's: in one
        script that first checks its partition's lease)."""
        if self._idle or self.lease_lost:
            return
        report, lag, updated_ms = self._measure()
        summary = _summary(report, lag, updated_ms)
        writes: list[Write] = [(self._settings.state_key, self.state.to_bytes()), (self._cursor_key, self._cursors),
                               *((keys.reader_cursors_key(stream), {self._settings.group: cursor})
                                 for stream, cursor in self._cursors.items()),
                               (self._settings.summary_key, {**summary, **self._sides()})]
        writes = [(key, value) for key, value in writes if isinstance(value, bytes) or value]
        if self._fence is not None:
            if not self._fence.write(writes):
                self._lose_lease()
                return
        else:
            pipe = self._client.pipeline(transaction=True)
            for key, value in writes:
                if isinstance(value, bytes):
                    pipe.set(key, value)
                else:
                    pipe.hset(key, mapping=value)
            pipe.execute()
        self._observer.checkpointed(report, lag, updated_ms / 1000.0)
        self._progress_log.checkpointed(summary, self.state.progress(), self._cursors)

    def _lose_lease(self) -> None:
        # Another shard took the partition (this one was paused past its TTL): it continues from the last
        # checkpoint written, so what was counted here since is counted there, once.
        log.warning("partition lease lost: another comparator shard took it; stopping this partition",
                    extra={"partition": str(self._settings.partition)})
        self.lease_lost = self._stopping = True

    def summary(self) -> dict[str, str]:
        return _summary(*self._measure())

    def _sides(self) -> dict[str, str]:
        """Which experiment and workers the summary is of (an implicit default is recorded with them)."""
        legacy, candidate = (feed.worker or feed.stream for feed in self._settings.feeds[:2])
        return {"experiment": self.experiment or "", "control": legacy, "candidate": candidate}

    def _measure(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
        experiment = self._settings.experiment
        # a shard's summary counts its partition's production
        produced = produced_in(self._client, self._settings.partition) if experiment is None or experiment.implicit \
            else None
        return self.state.report(produced), self._lag.measure(), server_time_ms(self._client)


def _summary(report: Mapping[str, Any], lag: Mapping[str, Any], updated_ms: float) -> dict[str, str]:
    return {"counts": json.dumps(report["counts"]), "ari": json.dumps(report["agreement"]["ari"]),
            "updated_ms": str(updated_ms), "lag": json.dumps(lag)}


def _translated_call(action: Callable[[], object]) -> object:
    with translated():
        return action()
