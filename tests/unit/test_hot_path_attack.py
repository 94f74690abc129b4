"""Attacks on the worker's hot path (6bac1dc) without Redis: the cached metas of the decoder's fast path and
the runtime's handling of a read sent ahead. Each bug they showed is fixed."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import msgpack
import numpy as np

from harness.contracts import ContractError, decode_clustered, decode_signal
from harness.contracts.checks import checked_signal, well_formed_signal
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport.base import Delivery
from harness.transport.errors import TransportUnavailable
from harness.transport.memory import InMemoryBroker, InMemoryTransport
from tests.unit.test_runtime import Labeller, payload

WORKER = "w"
MAX_SAMPLES = 1_000


def wire(signal_id: str = "s-1", **meta: Any) -> dict[str, Any]:
    """A message as our producer writes it (the fast path's input), with the given meta fields."""
    return {"v": 1, "id": signal_id, "meta": {"device": "dev-1", **meta}, "rate": 1000.0, "t0": 1.7e9,
            "samples": np.full(8, 230.0, "<f4").tobytes()}


# --- metas cached by their wire fields ----------------------------------------------------------------------


NEAR_MISSES: list[dict[str, Any]] = [  # each differs from the cached meta only in a value's type or shape
    {"tags": {"site": 1}}, {"tags": {"site": True}}, {"tags": {"site": b"a"}}, {"tags": {"site": None}},
    {"tags": {1: "a"}}, {"tags": {"site": ["a"]}}, {"tags": {"site": "a", "x": "\x00"}}, {"tags": ["site", "a"]},
    {"tags": 0}, {"tags": ""}, {"kind": ["k"]}, {"kind": 1}, {"kind": " "}, {"kind": None}, {"channel": None},
    {"channel": b"v"}, {"channel": " "}, {"device": b"dev-1"}, {"device": ["dev-1"]}, {"device": "dev-1 "},
    {"device": " "}, {"device": "d" * 5_000}, {"extra": "ignored?"},
]


def test_a_cached_meta_is_never_returned_for_a_message_the_field_checks_read_otherwise() -> None:
    cached: dict[str, Any] = {"kind": "k", "tags": {"site": "a"}}
    assert well_formed_signal(wire(**cached), MAX_SAMPLES) is not None  # now in the cache
    for near in NEAR_MISSES:
        message = wire(**{**cached, **near})
        fast = well_formed_signal(message, MAX_SAMPLES)
        try:
            checked = checked_signal(message, MAX_SAMPLES)
        except ContractError:
            assert fast is None, f"{near}: the fast path took what the field checks refuse"
            continue
        assert fast is None or fast.meta == checked.meta, f"{near}: read as {fast.meta}, not {checked.meta}"


def test_an_algorithm_editing_one_signals_tags_does_not_edit_the_next_signals() -> None:
    device = "attack-mutation"  # a meta no other test decodes: the edit below stays in the cache
    first = decode_signal(msgpack.packb(wire("s-1", device=device, tags={"site": "a"}), use_bin_type=True))
    first.meta.tags["site"] = "edited"  # SignalMeta is frozen, its dict is not: nothing forbids this
    first.meta.tags["added"] = "x"
    second = decode_signal(msgpack.packb(wire("s-2", device=device, tags={"site": "a"}), use_bin_type=True))
    assert second.meta.tags == {"site": "a"}, "the second message's tags are what it carried"


def test_metas_decoded_in_many_threads_while_the_cache_overflows_are_each_their_own() -> None:
    """Replicas decode in a thread per partition: 8 threads, 8,000 distinct metas (the cache starts again)."""
    problems: list[str] = []

    def decode_own_device(thread: int) -> None:
        for index in range(1_000):
            device, site = f"dev-{thread}-{index}", f"site-{index % 7}"
            signal = well_formed_signal(wire(f"s-{thread}-{index}", device=device, tags={"site": site}),
                                        MAX_SAMPLES)
            if signal is None or (signal.meta.device_id, signal.meta.tags) != (device, {"site": site}):
                problems.append(f"{device}: {signal and signal.meta}")

    threads = [threading.Thread(target=decode_own_device, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []


# --- the runtime and a read sent ahead ------------------------------------------------------------------------


class ReadAheadTransport(InMemoryTransport):
    """The in-memory transport with StreamTransport's read-ahead: after a full batch the next one is
    delivered at once (pending for this consumer) and handed over by the next read or take_read_ahead."""

    def __init__(self, broker: InMemoryBroker) -> None:
        super().__init__(broker, WORKER)
        self._ahead: list[Delivery] | None = None

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        deliveries = self._ahead if self._ahead else super().read(count, block_ms)
        self._ahead = super().read(count, 0) if len(deliveries) >= count else None
        return deliveries

    def take_read_ahead(self) -> list[Delivery]:
        self._broker.check_fault("take_read_ahead")
        deliveries, self._ahead = self._ahead or [], None
        return deliveries

    def reset(self) -> None:
        self._ahead = None
        super().reset()


class StopsAfterFirstBatch(Labeller):
    """Asks its runtime to stop (a SIGTERM) while it clusters the first batch."""

    runtime: WorkerRuntime | None = None

    def assign_batch(self, signals: Any) -> Any:
        if self.runtime is not None:
            self.runtime.request_stop()
        return super().assign_batch(signals)


def filled(count: int) -> tuple[InMemoryBroker, list[str]]:
    broker = InMemoryBroker()
    return broker, [broker.append("input", payload(f"s-{index}")) for index in range(count)]


def started(broker: InMemoryBroker, algorithm: Labeller) -> WorkerRuntime:
    return WorkerRuntime(ReadAheadTransport(broker), algorithm, RuntimeSettings(
        worker_name=WORKER, batch_size=10, block_ms=0, lease_ttl_s=None, exit_when_idle_s=0.0))


def answered(broker: InMemoryBroker) -> Counter[str | None]:
    return Counter(decode_clustered(result).input_entry_id for _, result in broker.results.get(WORKER, []))


def test_a_stop_processes_the_batch_read_ahead_and_reads_no_further() -> None:
    broker, entries = filled(30)
    algorithm = StopsAfterFirstBatch()
    worker = started(broker, algorithm)
    algorithm.runtime = worker
    worker.run()
    assert answered(broker) == Counter(entries[:20]), "the batch in hand and the one read ahead, once each"
    assert broker.pending("input", WORKER) == {}, "nothing left pending"


def test_a_read_ahead_the_store_will_not_hand_over_at_a_stop_is_processed_once_after_a_restart() -> None:
    broker, entries = filled(30)
    algorithm = StopsAfterFirstBatch()
    worker = started(broker, algorithm)
    algorithm.runtime = worker
    broker.fail_next("take_read_ahead", TransportUnavailable("redis unavailable: gone"))
    worker.run()
    assert answered(broker) == Counter(entries[:10])
    assert list(broker.pending("input", WORKER)) == entries[10:20], "left pending, not lost"
    started(broker, Labeller()).run()
    assert answered(broker) == Counter(entries), "every entry exactly once"
    assert broker.pending("input", WORKER) == {}
