"""The SDK contract over the in-memory transport: never learn twice, resume from a snapshot, state tied
to the model version."""

from __future__ import annotations

import pytest

from harness.contracts import decode_clustered
from harness.runtime.worker import RuntimeSettings, WorkerRuntime
from harness.transport.errors import StateVersionMismatch, TransportOutOfMemory
from harness.transport.memory import InMemoryBroker, InMemoryTransport
from tests.support.algorithms import OnlineLearner
from tests.unit.test_runtime import payload

WORKER = "learner"


def runtime(broker: InMemoryBroker, learner: OnlineLearner, reset: bool = False) -> WorkerRuntime:
    return WorkerRuntime(InMemoryTransport(broker, WORKER), learner,
                         RuntimeSettings(worker_name=WORKER, batch_size=10, lease_ttl_s=None, reset_state=reset))


def drain(worker: WorkerRuntime) -> None:
    while worker.step():
        pass


def labels(broker: InMemoryBroker) -> list[tuple[str, str, str | None]]:
    decoded = [decode_clustered(p) for _, p in broker.results.get(WORKER, [])]
    return [(r.signal_id, r.outcome, r.label) for r in decoded]


def test_a_failing_batch_is_never_learned_twice_and_its_signals_get_error_results() -> None:
    broker = InMemoryBroker()
    for i in range(10):
        broker.append("input", payload(f"s{i}", level=-5.0 if i == 6 else 230.0 + i * 10))
    learner = OnlineLearner()
    drain(runtime(broker, learner))
    assert set(learner.learned.values()) == {1}, "no signal may be learned twice"
    assert [outcome for _, outcome, _ in labels(broker)] == ["error"] * 10
    assert learner.clusters == {}, "what the failed batch taught was rolled back with its snapshot"


def test_a_store_error_inside_the_algorithm_restores_the_snapshot_before_the_retry() -> None:
    broker = InMemoryBroker()
    for i in range(4):
        broker.append("input", payload(f"s{i}", level=230.0 + i * 10))

    class FlakyStore(OnlineLearner):
        failures = 1

        def assign_batch(self, signals):  # type: ignore[no-untyped-def]
            result = super().assign_batch(signals)
            if self.failures:
                self.failures -= 1
                raise TransportOutOfMemory("OOM command not allowed")
            return result

    learner = FlakyStore()
    drain(runtime(broker, learner))
    assert [label for _, _, label in labels(broker)] == ["k1", "k2", "k3", "k4"], "numbering continues from zero"


def test_a_restarted_learner_resumes_from_its_snapshot_and_its_labels_continue() -> None:
    broker = InMemoryBroker()
    for i in range(3):
        broker.append("input", payload(f"a{i}", level=230.0 + i * 10))
    drain(runtime(broker, OnlineLearner()))
    for i in range(3, 6):
        broker.append("input", payload(f"a{i}", level=230.0 + (i - 3) * 10 if i < 5 else 400.0))
    restarted = OnlineLearner()
    drain(runtime(broker, restarted))  # a new process: an empty model until the runtime restores it
    assert [label for _, _, label in labels(broker)] == ["k1", "k2", "k3", "k1", "k2", "k4"]


def test_state_from_another_model_version_is_refused_unless_reset() -> None:
    broker = InMemoryBroker()
    broker.append("input", payload("a", level=230.0))
    drain(runtime(broker, OnlineLearner("v1")))
    with pytest.raises(StateVersionMismatch, match="v1"):
        runtime(broker, OnlineLearner("v2")).prepare()
    fresh = OnlineLearner("v2")
    broker.append("input", payload("b", level=400.0))
    drain(runtime(broker, fresh, reset=True))
    assert labels(broker)[-1] == ("b", "clustered", "k1"), "a reset starts from an empty model"
