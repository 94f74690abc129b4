"""Writes signals to the input stream (or a pub/sub channel), batched, optionally rate-limited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import redis

from harness.contracts import SignalReceived, encode_signal
from harness.transport.keys import PAYLOAD_FIELD, PRODUCED_KEY
from harness.transport.trim import trim_stream

TRIM_EVERY = 10_000  # entries between two safe trims when trimming is on


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
) -> int:
    """Send every signal; `rate` is signals/s (None: as fast as possible). Returns the count."""
    sent = 0
    started = time.monotonic()
    pipe = client.pipeline(transaction=False)
    queued = 0
    # With a rate, small batches keep the pacing smooth; without one, larger batches go faster.
    flush_at = max(1, min(batch_size, int(rate // 50) or 1)) if rate else batch_size
    for signal in signals:
        payload = encode_signal(signal)
        if channel:
            pipe.publish(channel, payload)
        else:
            pipe.xadd(stream, {PAYLOAD_FIELD: payload})
        queued += 1
        if queued >= flush_at:
            pipe.incrby(PRODUCED_KEY, queued)
            pipe.execute()
            sent += queued
            queued = 0
            if on_progress:
                on_progress(sent)
            if trim and not channel and sent % TRIM_EVERY < flush_at:
                trim_stream(client, stream, min_groups=trim_min_groups)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    if queued:
        pipe.incrby(PRODUCED_KEY, queued)
        pipe.execute()
        sent += queued
        if on_progress:
            on_progress(sent)
    return sent
