"""Redis pub/sub transport: attaches a worker to an existing production channel.

Pub/sub is lossy by design: a message published while the worker is away (restarting, or
disconnected) is never delivered to it. Results, dead letters, dedupe, heartbeat and lease are
the Streams transport's; only the input differs. Use Streams wherever the producer can be changed.
"""

from __future__ import annotations

import itertools
import time

import redis

from harness.transport.base import CommitBatch, CommitOutcome, Delivery
from harness.transport.redis_errors import translated
from harness.transport.replies import server_time_ms
from harness.transport.streams import DEFAULT_DEDUPE_TTL_S, StreamTransport


class PubSubTransport(StreamTransport):
    def __init__(self, client: redis.Redis, worker: str, channel: str,
                 dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S) -> None:
        super().__init__(client, worker, input_stream=f"{channel}:unused", dedupe_ttl_s=dedupe_ttl_s)
        self._channel = channel
        self._pubsub_client = client
        self._sequence = itertools.count(1)
        with translated():
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(channel)
            self._offset_ms = server_time_ms(client) - time.time() * 1000.0

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        with translated():
            return self._read_messages(count, block_ms)

    def _read_messages(self, count: int, block_ms: int) -> list[Delivery]:
        deliveries: list[Delivery] = []
        deadline = time.monotonic() + block_ms / 1000.0
        while len(deliveries) < count:
            remaining = deadline - time.monotonic()
            message = self._pubsub.get_message(timeout=max(remaining, 0.0) if not deliveries else 0.0)
            if message is None:
                if deliveries or remaining <= 0:
                    break
                continue
            if message.get("type") != "message":
                continue
            now_ms = time.time() * 1000.0 + self._offset_ms
            entry_id = f"{int(now_ms)}-{next(self._sequence)}"
            data = message["data"]
            payload = data if isinstance(data, bytes) else str(data).encode()
            deliveries.append(Delivery(entry_id, payload, now_ms))
        return deliveries

    def commit(self, batch: CommitBatch) -> CommitOutcome:
        # Nothing to ack on pub/sub: what was delivered is gone from the channel anyway.
        return super().commit(CommitBatch((), batch.results, batch.dead_letters))

    def reset(self) -> None:
        with translated():
            self._pubsub.close()
            self._pubsub = self._pubsub_client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self._channel)

    def close(self) -> None:
        self._pubsub.close()
        super().close()
