"""Redis pub/sub transport: attaches a worker to an existing production channel.

Pub/sub is lossy by design: a message published while the worker is away (restarting, or
disconnected) is never delivered to it. Results still go to the worker's results stream.
Use the Streams transport wherever the producer can be changed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import redis

from harness.transport.base import CommitBatch, CommitOutcome, Delivery, Transport
from harness.transport.replies import server_time_ms
from harness.transport.streams import StreamTransport


class PubSubTransport(Transport):
    def __init__(self, client: redis.Redis, worker: str, channel: str, dedupe_ttl_s: int = 3600) -> None:
        self._client = client
        self._channel = channel
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)
        self._sequence = itertools.count(1)
        self._offset_ms = self._measure_offset()
        # Results, dead letters and dedupe are the same as with streams; only the input differs.
        self._writer = StreamTransport(client, worker, input_stream=f"{channel}:unused",
                                       dedupe_ttl_s=dedupe_ttl_s)

    def _measure_offset(self) -> float:
        return server_time_ms(self._client) - time.time() * 1000.0

    def read(self, count: int, block_ms: int) -> list[Delivery]:
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
        # Nothing to ack on pub/sub: the script's XACK on the unused stream is a no-op.
        return self._writer.commit(CommitBatch((), batch.results, batch.dead_letters))

    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        return self._writer.first_sightings(ids)

    def server_time_ms(self) -> float:
        return self._writer.server_time_ms()

    def reset(self) -> None:
        self._pubsub.close()
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self._channel)

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()
