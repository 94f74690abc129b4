"""Fuzz: whatever bytes arrive, the runtime gives every entry exactly one result and keeps running."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.contracts import decode_clustered
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport.memory import InMemoryBroker, InMemoryTransport
from tests.unit.test_runtime import Labeller, payload

EXAMPLES = 250
MIN_BATCH = 40  # EXAMPLES x MIN_BATCH = 10,000 generated messages at the least

text = st.text(st.characters(codec=None, blacklist_categories=()), max_size=40)  # surrogates included
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text | st.binary(max_size=64)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=20)


def near_valid(draw: st.DrawFn) -> bytes:
    message: dict[str, Any] = {"v": 1, "id": draw(text), "meta": {"device": draw(text), "kind": draw(text)},
                               "rate": 1000, "samples": [230.0, 231.0, 229.0]}
    key = draw(st.sampled_from(["v", "id", "meta", "rate", "samples", "t0", None]))
    if key is not None:
        message[key] = draw(json_values)
    as_json = json.dumps(message, default=lambda raw: raw.hex()).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        return as_json
    try:
        return bytes(msgpack.packb(message, use_bin_type=True, unicode_errors="surrogatepass"))
    except OverflowError:  # an integer msgpack cannot carry: the JSON form still can
        return as_json


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "near_valid", "deep", "huge_id", "huge_number", "valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(100, 5000))
        return b'{"v":1,"id":"x","meta":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge_id":
        return json.dumps({"v": 1, "id": "i" * draw(st.integers(257, 200_000)), "meta": {"device": "d"},
                           "rate": 1000, "samples": [1.0]}).encode()
    if kind == "huge_number":
        return b'{"v":1,"id":"n","meta":{"device":"d"},"rate":1e400,"samples":[' + b"9" * 500 + b"]}"
    if kind == "valid":
        return payload(f"ok-{draw(st.integers(0, 10**9))}")
    return near_valid(draw)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(messages(), min_size=MIN_BATCH, max_size=MIN_BATCH + 20))
def test_every_message_gets_one_result_and_nothing_escapes(batch: list[bytes]) -> None:
    broker = InMemoryBroker()
    entries = [broker.append("input", body) for body in batch]
    worker = WorkerRuntime(InMemoryTransport(broker, "w"), Labeller(),
                           RuntimeSettings(worker_name="w", batch_size=25, lease_ttl_s=None, max_samples=1000))
    while worker.step():
        pass
    results = broker.results["w"]
    assert [entry for entry, _ in results] == entries
    for _, encoded in results:
        result = decode_clustered(encoded)
        assert result.outcome in ("clustered", "error")
        assert len(result.signal_id.encode("utf-8")) <= 256 or result.signal_id.startswith("entry:")
        if result.outcome == "error":
            assert result.error_type and result.error_message
    assert broker.pending("input", "w") == {}
    for letter in broker.dead_letters.get("w", []):
        assert len(letter.payload) <= 4096 and letter.payload_size >= len(letter.payload)


def test_memory_stays_bounded_for_oversize_messages() -> None:
    broker = InMemoryBroker()
    huge = b'{"v":1,"id":"big","meta":{"device":"d"},"rate":1000,"samples":[' + b"1.0," * 2_000_000 + b"1.0]}"
    for _ in range(5):
        broker.append("input", huge)
    worker = WorkerRuntime(InMemoryTransport(broker, "w"), Labeller(),
                           RuntimeSettings(worker_name="w", batch_size=5, lease_ttl_s=None, max_samples=1000))
    tracemalloc.start()
    try:
        while worker.step():
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [decode_clustered(p).error_type for _, p in broker.results["w"]] == ["oversize"] * 5
    assert peak < 4 * len(huge), f"peak {peak} bytes for five {len(huge)}-byte messages: they were parsed"
