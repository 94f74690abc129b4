"""The legacy worker: its algorithm on simple signals, and its state in Redis across a restart."""

from __future__ import annotations

import numpy as np
import redis

from harness.clustering import ClusteringAlgorithm, WorkerContext
from harness.contracts import DEFAULT_LABEL, SignalMeta, SignalReceived
from harness.producer.synthetic import generate_signals
from workers.legacy import create
from workers.legacy.algorithm import LegacyClusterer, smooth
from workers.legacy.state import DeviceState, MemoryDeviceStore


def flat(volts: float, signal_id: str, device: str = "dev-01") -> SignalReceived:
    return SignalReceived(signal_id, SignalMeta(device), 1000.0, 0.0, np.full(100, volts, dtype=np.float32))


def sag(depth: float, signal_id: str, device: str = "dev-01") -> SignalReceived:
    wave = np.full(100, 230.0, dtype=np.float32)
    wave[40:70] -= depth
    return SignalReceived(signal_id, SignalMeta(device), 1000.0, 0.0, wave)


def in_memory() -> ClusteringAlgorithm:
    return create(WorkerContext("legacy", None, {}))


def test_legacy_is_a_clustering_algorithm_with_a_version() -> None:
    algorithm = in_memory()
    assert isinstance(algorithm, ClusteringAlgorithm)
    assert algorithm.model_version == "legacy-1.0"


def test_smoothing_averages_windows_of_ten_and_a_partial_last_one() -> None:
    assert smooth(np.arange(25, dtype=np.float32)).tolist() == [4.5, 14.5, 22.0]


def test_normal_signals_go_to_the_default_cluster_and_anomalies_to_numbered_ones() -> None:
    assignments = in_memory().assign_batch(
        [flat(230.0, "a"), sag(50.0, "b"), sag(51.0, "c"), sag(150.0, "d"), flat(230.5, "e")]
    )
    assert [(a.label, a.is_new_cluster) for a in assignments] == [
        (DEFAULT_LABEL, False),
        ("dev-01:1", True),
        ("dev-01:1", False),
        ("dev-01:2", True),
        (DEFAULT_LABEL, False),
    ]


def test_each_device_numbers_its_own_clusters() -> None:
    assignments = in_memory().assign_batch([sag(50.0, "a", "dev-01"), sag(50.0, "b", "dev-02")])
    assert [a.label for a in assignments] == ["dev-01:1", "dev-02:1"]


class BrokenDeviceStore(MemoryDeviceStore):
    def load(self, device_id: str) -> DeviceState:
        if device_id == "broken":
            raise KeyError(device_id)
        return super().load(device_id)


def test_one_assignment_per_signal_even_when_one_fails() -> None:
    algorithm = LegacyClusterer(BrokenDeviceStore())
    assignments = algorithm.assign_batch([flat(230.0, "a"), flat(230.0, "b", "broken"), flat(230.0, "c")])
    assert [a.outcome for a in assignments] == ["clustered", "error", "clustered"]
    assert assignments[1].error_type == "KeyError"


def test_two_legacy_workers_with_different_names_keep_separate_state(redis_client: redis.Redis) -> None:
    signals = list(generate_signals(200, seed=5))
    primary = create(WorkerContext("legacy", redis_client, {})).assign_batch(signals)
    replica = create(WorkerContext("legacy-replica", redis_client, {})).assign_batch(signals)
    assert [a.label for a in primary] == [a.label for a in replica]
    assert any(a.is_new_cluster for a in replica), "the replica started from empty state"
    prefixes = {key.decode().rsplit(":", 1)[0] for key in redis_client.keys("harness:state:*")}
    assert prefixes == {"harness:state:legacy:device", "harness:state:legacy-replica:device"}
