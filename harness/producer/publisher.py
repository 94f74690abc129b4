"""Writes signals to the input stream (or a pub/sub channel) in batches, each one atomic and idempotent.

One Lua script per batch writes the entries, the produced counter and the run's progress (a
per-run sequence: how many of this run's signals are written) together, so the counter always
equals what the stream received. A batch retried after its reply was lost is recognised by that
progress and nothing is written twice; a run restarted with the same `run_id` resumes after its
last written signal. Entry ids stay server-assigned (`*`), not derived from the producer's
progress: latency is measured from the entry id on the store's clock, and several producers may
share a stream. Store errors (unavailable, full, read-only) are retried with backoff, the batch
in hand, up to `max_wait_s`; a Redis unreachable at the start fails at once (a wrong URL).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

import redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, stop_never
from tenacity import wait_random_exponential as wait_random_exp

from harness.contracts import SignalReceived, encode_signal
from harness.errors import HarnessError
from harness.partitions import DEFAULT_PARTITIONS, Partition, all_partitions, partition_index
from harness.transport import keys
from harness.transport.errors import TransportOutOfMemory, TransportReadOnly, TransportUnavailable
from harness.transport.keys import PAYLOAD_FIELD, PRODUCED_KEY, PRODUCER_RUNS_KEY
from harness.transport.redis_errors import translated
from harness.transport.trim import trim_stream

log = logging.getLogger("harness.producer")

TRIM_EVERY = 10_000  # entries between two safe trims when trimming is on
MAX_BACKOFF_S = 5.0
RETRYABLE = (TransportUnavailable, TransportOutOfMemory, TransportReadOnly)
T = TypeVar("T")

# KEYS: 1 stream or channel, 2 produced counter, 3 runs hash, 4 lost counter.
# ARGV: 1 run id, 2 the run's sequence number of the first payload, 3 'stream' | 'channel', 4 the entry's
# field name, 5.. payloads.
# The counters are written before the entries: under maxmemory the first write is refused before
# anything else is done, and a PUBLISH (never refused) cannot go out ahead of a refused counter.
PUBLISH_SCRIPT = """
local done = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local first, n = tonumber(ARGV[2]), #ARGV - 4
if done < first then
  -- The store holds less of this run than it acknowledged: a failover lost writes that had not reached
  -- the replica yet. Counted, so that the loss shows in the report instead of passing in silence.
  redis.call('INCRBY', KEYS[4], first - done)
end
local skip = math.max(done - first, 0)  -- written by an attempt whose reply was lost
if skip >= n then return 0 end
redis.call('INCRBY', KEYS[2], n - skip)
redis.call('HSET', KEYS[3], ARGV[1], first + n)
for i = 5 + skip, #ARGV do
  if ARGV[3] == 'channel' then
    redis.call('PUBLISH', KEYS[1], ARGV[i])
  else
    redis.call('XADD', KEYS[1], '*', ARGV[4], ARGV[i])
  end
end
return n - skip
"""


class ProducerStopped(HarnessError):
    """The store stayed unavailable past the producer's bounded wait."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def run_progress(client: redis.Redis, run_id: str, partition: Partition | None = None) -> int:
    """How many signals of run `run_id` (routed to `partition`) are already written (0 for a new run)."""
    # Not translated: an unreachable Redis here, before anything is sent, is a wrong URL or a down
    # server, and reaches the user as the CLI's "cannot reach Redis" line.
    return int(client.hget(keys.scoped(PRODUCER_RUNS_KEY, partition), run_id) or 0)


class _BatchWriter:
    """Writes one run's batches through the script, retrying store errors with backoff."""

    def __init__(self, client: redis.Redis, target: str, channel: bool, run_id: str,
                 max_wait_s: float | None, partition: Partition | None = None) -> None:
        self._client = client
        self._target = target if channel else keys.scoped(target, partition)
        # The counters live in the partition's slot, with its stream: one script writes all three.
        self._counters = [keys.scoped(PRODUCED_KEY, partition), keys.scoped(PRODUCER_RUNS_KEY, partition),
                          keys.scoped(keys.PRODUCED_LOST_KEY, partition)]
        self._mode = "channel" if channel else "stream"
        self._run_id = run_id
        self._max_wait_s = max_wait_s
        self._script = client.register_script(PUBLISH_SCRIPT)
        self.written = 0  # this run's signals known to be in the store

    def write(self, first: int, payloads: list[bytes]) -> None:
        def attempt() -> None:
            with translated():
                self._script(keys=[self._target, *self._counters],
                             args=[self._run_id, first, self._mode, PAYLOAD_FIELD, *payloads])

        self.retried(attempt, "write")
        self.written = first + len(payloads)

    def retried(self, action: Callable[[], T], what: str) -> T:
        try:
            return action()  # the hot path: no retry machinery unless the store fails
        except RETRYABLE as exc:
            self._log_retry(what, exc, 0, 0.0)
        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception_type(RETRYABLE), wait=wait_random_exp(multiplier=0.1, max=MAX_BACKOFF_S),
            stop=stop_never if self._max_wait_s is None else stop_after_delay(self._max_wait_s),
            before_sleep=lambda state: self._before_sleep(what, state), reraise=True,
        )
        try:
            return retrying(action)
        except RETRYABLE as exc:
            raise ProducerStopped(
                f"producer stopped after {time.monotonic() - started:.0f}s of store errors ({exc}); "
                f"{self.written:,} signals of run {self._run_id} written; "
                f"resume with --run-id {self._run_id}") from None

    def _before_sleep(self, what: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        self._log_retry(what, error, state.attempt_number, wait_s)

    def _log_retry(self, what: str, error: BaseException | None, attempt: int, wait_s: float) -> None:
        log.warning("store error: the batch in hand is retried", extra={
            "run_id": self._run_id, "during": what, "error": str(error), "attempt": attempt,
            "retry_in_s": round(wait_s, 2), "written": self.written})


def publish_signals(
    client: redis.Redis,
    signals: Iterable[SignalReceived],
    stream: str,
    rate: float | None = None,
    channel: str | None = None,
    batch_size: int = 200,
    trim: bool = False,
    trim_min_groups: int = 2,
    on_progress: Callable[[int], None] | None = None,
    run_id: str | None = None,
    max_wait_s: float | None = None,
    partitions: int = DEFAULT_PARTITIONS,
) -> int:
    """Send every signal not yet written by run `run_id` (a new run by default); `rate` is signals/s
    (None: as fast as possible). Each signal goes to its device's partition. Returns how many were
    written by this call."""
    run_id = run_id or new_run_id()
    writers = [_BatchWriter(client, channel or stream, channel is not None, run_id, max_wait_s, partition)
               for partition in all_partitions(partitions)]
    resumed = [run_progress(client, run_id, partition) for partition in all_partitions(partitions)]
    for writer, done in zip(writers, resumed, strict=True):
        writer.written = done
    if any(resumed):
        log.info("resuming run", extra={"run_id": run_id, "written": sum(resumed)})
    # With a rate, small batches keep the pacing smooth; without one, larger batches go faster.
    flush_at = max(1, min(batch_size, int(rate // 50) or 1)) if rate else batch_size
    routed = [0] * partitions  # this run's signals routed to each partition so far, written or not
    started, sent = time.monotonic(), 0
    remaining = iter(signals)
    while chunk := list(itertools.islice(remaining, flush_at)):
        batches: dict[int, list[bytes]] = {}
        for signal in chunk:
            index = partition_index(signal.meta.device_id, partitions)
            if routed[index] >= resumed[index]:  # a resumed run skips what each partition already has
                batches.setdefault(index, []).append(encode_signal(signal))
            routed[index] += 1
        for index, payloads in batches.items():
            writers[index].write(writers[index].written, payloads)
            sent += len(payloads)
            if trim and not channel and writers[index].written % TRIM_EVERY < len(payloads):
                target = keys.scoped(stream, Partition(index, partitions))
                writers[index].retried(functools.partial(_trim, client, target, trim_min_groups), "trim")
        if on_progress and batches:
            on_progress(sent)
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return sent


def _trim(client: redis.Redis, stream: str, min_groups: int) -> int:
    with translated():
        return trim_stream(client, stream, min_groups=min_groups)
