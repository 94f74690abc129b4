"""The ClusterSignal use case, run with in-memory adapters: what is saved, what is published."""

from __future__ import annotations

import numpy as np
import pytest

from harness.contracts import DEFAULT_LABEL, SignalMeta, SignalReceived
from workers.candidate.adapters.ids import DeviceScopedIds
from workers.candidate.adapters.memory import InMemoryClusterRepository
from workers.candidate.adapters.publisher import CollectingPublisher
from workers.candidate.domain.allocation import ProfileClustering
from workers.candidate.domain.features import Screen
from workers.candidate.domain.model import Cluster, ClusterSet, SignalClustered
from workers.candidate.domain.settings import Centroid, ClusterScope, Features, NegativeVoltage, Settings
from workers.candidate.use_case import ClusterSignal

DEVICE = "dev-01"


def flat(volts: float, signal_id: str, device: str = DEVICE, samples: int = 100) -> SignalReceived:
    wave = np.full(samples, volts, dtype=np.float32)
    return SignalReceived(signal_id, SignalMeta(device), 1000.0, 1.7e9, wave)


def sag(depth: float, signal_id: str, device: str = DEVICE) -> SignalReceived:
    wave = np.full(100, 230.0, dtype=np.float32)
    wave[40:70] -= depth
    return SignalReceived(signal_id, SignalMeta(device), 1000.0, 1.7e9, wave)


class CountingRepository(InMemoryClusterRepository):
    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1
        super().commit()


class FlakyRepository(CountingRepository):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next_commit = False

    def commit(self) -> None:
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise ConnectionError("redis went away")
        super().commit()


class FailingIds(DeviceScopedIds):
    def next_label(self, device_id: str, number: int) -> str:
        if device_id == "broken":
            raise LookupError("no labels for this device")
        return super().next_label(device_id, number)


def make(
    settings: Settings | None = None, ids: DeviceScopedIds | None = None
) -> tuple[ClusterSignal, CountingRepository, CollectingPublisher]:
    repo, publisher = CountingRepository(), CollectingPublisher()
    use_case = ClusterSignal(publisher, ProfileClustering(settings or Settings()), repo, ids or DeviceScopedIds())
    return use_case, repo, publisher


def run(use_case: ClusterSignal, publisher: CollectingPublisher, *signals: SignalReceived) -> list[SignalClustered]:
    use_case.handle_batch(signals)
    return publisher.drain()


def test_default_signal_is_not_saved_as_a_cluster() -> None:
    use_case, repo, publisher = make()
    (event,) = run(use_case, publisher, flat(230.0, "a"))
    assert (event.label, event.is_new) == (DEFAULT_LABEL, False)
    assert len(repo.get_clusters(DEVICE)) == 0


def test_a_normal_signal_becomes_its_device_reference() -> None:
    use_case, repo, publisher = make()
    run(use_case, publisher, flat(230.0, "a"))
    reference = repo.get_reference(DEVICE)
    assert reference is not None and np.allclose(reference, 230.0)


def test_the_reference_follows_a_slow_drift_one_normal_signal_at_a_time() -> None:
    use_case, _, publisher = make()
    events = run(use_case, publisher, *(flat(230.0 + 1.2 * i, f"s{i}") for i in range(6)))
    assert [e.label for e in events] == [DEFAULT_LABEL] * 6, "each step is below the 1.5 V noise threshold"


def test_a_step_beyond_the_noise_threshold_is_an_anomaly() -> None:
    use_case, _, publisher = make()
    events = run(use_case, publisher, flat(230.0, "a"), flat(240.0, "b"))
    assert events[1].label == f"{DEVICE}/k1" and events[1].is_new


def test_first_anomaly_founds_a_cluster_that_is_saved() -> None:
    use_case, repo, publisher = make()
    _, event = run(use_case, publisher, flat(230.0, "a"), sag(50.0, "b"))
    assert (event.label, event.is_new) == (f"{DEVICE}/k1", True)
    (cluster,) = repo.get_clusters(DEVICE).clusters
    assert (cluster.label, cluster.number, cluster.members) == (f"{DEVICE}/k1", 1, 1)


def test_a_similar_anomaly_joins_the_existing_cluster() -> None:
    use_case, repo, publisher = make()
    events = run(use_case, publisher, flat(230.0, "a"), sag(50.0, "b"), sag(52.0, "c"))
    assert [(e.label, e.is_new) for e in events[1:]] == [(f"{DEVICE}/k1", True), (f"{DEVICE}/k1", False)]
    assert repo.get_clusters(DEVICE).clusters[0].members == 2


def test_a_dissimilar_anomaly_founds_a_second_cluster() -> None:
    use_case, repo, publisher = make()
    events = run(use_case, publisher, flat(230.0, "a"), sag(50.0, "b"), sag(150.0, "c"))
    assert [e.label for e in events[1:]] == [f"{DEVICE}/k1", f"{DEVICE}/k2"]
    assert len(repo.get_clusters(DEVICE)) == 2


def test_clusters_belong_to_their_device() -> None:
    use_case, _, publisher = make()
    events = run(use_case, publisher, sag(50.0, "a", "dev-01"), sag(50.0, "b", "dev-02"))
    assert [e.label for e in events] == ["dev-01/k1", "dev-02/k1"]
    assert all(e.is_new for e in events)


def test_the_publisher_gets_one_event_per_signal_in_order_and_state_is_committed_once() -> None:
    use_case, repo, publisher = make()
    signals = [flat(230.0, "a"), sag(50.0, "b"), flat(230.0, "c", "dev-02"), sag(90.0, "d")]
    events = run(use_case, publisher, *signals)
    assert [e.signal_id for e in events] == ["a", "b", "c", "d"]
    assert repo.commits == 1


def test_negative_voltage_is_declined_under_reject_and_state_is_untouched() -> None:
    use_case, repo, publisher = make(Settings(negative_voltage=NegativeVoltage.REJECT))
    glitch = flat(230.0, "neg")
    glitch.samples[10:13] = -40.0
    event, after = run(use_case, publisher, glitch, flat(230.0, "ok"))
    assert (event.label, event.decline_reason) == (None, "negative voltage: 3 samples below 0")
    assert after.label == DEFAULT_LABEL
    assert len(repo.get_clusters(DEVICE)) == 0


def test_negative_voltage_is_clustered_under_keep() -> None:
    use_case, _, publisher = make()
    glitch = flat(230.0, "neg")
    glitch.samples[10:13] = -40.0
    _, event = run(use_case, publisher, flat(230.0, "a"), glitch)
    assert event.label == f"{DEVICE}/k1"


def test_clipping_negative_voltage_makes_a_glitch_shallower() -> None:
    glitch = flat(230.0, "neg")
    glitch.samples[10:20] = -200.0
    kept, clipped = make(), make(Settings(negative_voltage=NegativeVoltage.CLIP))
    run(kept[0], kept[2], flat(230.0, "a"), glitch)
    run(clipped[0], clipped[2], flat(230.0, "a"), glitch)
    kept_min = kept[1].get_clusters(DEVICE).clusters[0].representative[2]
    clipped_min = clipped[1].get_clusters(DEVICE).clusters[0].representative[2]
    assert kept_min == pytest.approx(-430.0) and clipped_min == pytest.approx(-230.0)


def test_first_centroid_keeps_the_first_members_profile() -> None:
    use_case, repo, publisher = make(Settings(centroid=Centroid.FIRST))
    run(use_case, publisher, flat(230.0, "a"), sag(50.0, "b"))
    first = repo.get_clusters(DEVICE).clusters[0].representative
    run(use_case, publisher, sag(54.0, "c"))
    (cluster,) = repo.get_clusters(DEVICE).clusters
    assert cluster.representative == first and cluster.members == 2


def test_mean_centroid_moves_to_the_running_mean_of_its_members() -> None:
    use_case, repo, publisher = make(Settings(centroid=Centroid.MEAN))
    run(use_case, publisher, flat(230.0, "a"), sag(50.0, "b"), sag(54.0, "c"), sag(58.0, "d"))
    (cluster,) = repo.get_clusters(DEVICE).clusters
    assert cluster.members == 3
    assert cluster.representative[2] == pytest.approx(-54.0)  # the mean of the three minima


def test_a_signal_that_fails_gets_an_error_event_and_the_rest_of_the_batch_is_clustered() -> None:
    use_case, _, publisher = make(ids=FailingIds())
    events = run(use_case, publisher, sag(50.0, "a", "broken"), sag(50.0, "b"))
    assert (events[0].label, events[0].error_type) == (None, "LookupError")
    assert events[0].error_message == "no labels for this device"
    assert events[1].label == f"{DEVICE}/k1"


def test_a_cluster_set_refuses_a_cluster_numbered_out_of_sequence() -> None:
    clusters = ClusterSet(DEVICE)
    with pytest.raises(ValueError, match="does not fit"):
        clusters.with_cluster(Cluster("x", DEVICE, 2, (0.0,) * 5))
    with pytest.raises(ValueError, match="does not fit"):
        clusters.with_cluster(Cluster("x", "other-device", 1, (0.0,) * 5))


def test_a_batch_that_cannot_be_committed_leaves_no_state_behind() -> None:
    repo, publisher = FlakyRepository(), CollectingPublisher()
    use_case = ClusterSignal(publisher, ProfileClustering(Settings()), repo, DeviceScopedIds())
    run(use_case, publisher, flat(230.0, "a"))
    repo.fail_next_commit = True
    with pytest.raises(ConnectionError):
        use_case.handle_batch([flat(231.0, "b"), sag(50.0, "c")])
    publisher.drain()
    reference = repo.get_reference(DEVICE)
    assert reference is not None and np.allclose(reference, 230.0)
    assert len(repo.get_clusters(DEVICE)) == 0
    retried = run(use_case, publisher, flat(231.0, "b"), sag(50.0, "c"))
    assert [(e.label, e.is_new) for e in retried] == [(DEFAULT_LABEL, False), (f"{DEVICE}/k1", True)]


def test_shared_clusters_take_the_same_anomaly_from_any_device() -> None:
    use_case, repo, publisher = make(Settings(cluster_scope=ClusterScope.SHARED))
    events = run(use_case, publisher, sag(50.0, "a", "dev-01"), sag(50.0, "b", "dev-02"), sag(150.0, "c", "dev-03"))
    assert [(e.label, e.is_new) for e in events] == [("shared/k1", True), ("shared/k1", False), ("shared/k2", True)]
    assert [e.device_id for e in events] == ["dev-01", "dev-02", "dev-03"]
    assert len(repo.get_clusters("dev-01")) == 0 and repo.get_clusters("").clusters[0].members == 2


def test_a_smaller_similarity_scale_splits_what_the_default_joins() -> None:
    signals = (flat(230.0, "a"), sag(50.0, "b"), sag(52.0, "c"))
    default, _, publisher = make()
    assert len({e.label for e in run(default, publisher, *signals)[1:]}) == 1
    narrow, _, publisher = make(Settings(similarity_scale=0.5))
    assert len({e.label for e in run(narrow, publisher, *signals)[1:]}) == 2


def test_shape_features_tell_a_rising_ramp_from_its_time_reversal_which_has_equal_statistics() -> None:
    def ramp(rising: bool, signal_id: str, height: float) -> SignalReceived:
        wave = np.full(200, 230.0, dtype=np.float32)
        burst = np.linspace(0.0, height, 80, dtype=np.float32)
        wave[60:140] += burst if rising else burst[::-1]
        return SignalReceived(signal_id, SignalMeta(DEVICE), 1000.0, 1.7e9, wave)

    signals = (ramp(True, "a", 40), ramp(False, "b", 40), ramp(True, "c", 42), ramp(False, "d", 38))
    deviation, _, publisher = make()
    assert len({e.label for e in run(deviation, publisher, *signals)}) == 1, "equal statistics: one cluster"
    shape, _, publisher = make(Settings(features=Features.SHAPE, similarity_scale=1.0, similarity_threshold=0.7))
    labels = [e.label for e in run(shape, publisher, *signals)]
    assert labels[0] == labels[2] != labels[1] == labels[3]


def noisy_sequence(seed: int, count: int, lengths: tuple[int, ...] = (100,)) -> list[SignalReceived]:
    """Three devices, long runs of anomalies between normal signals, some negative glitches."""
    rng = np.random.default_rng(seed)
    signals = []
    for i in range(count):
        wave = (230.0 + rng.normal(0, 0.5, size=int(rng.choice(lengths)))).astype(np.float32)
        if rng.random() < 0.7:  # mostly anomalies: the last normal signal is often many places back
            wave[20:50] -= np.float32(rng.choice([30.0, 60.0, 120.0]) + rng.normal(0, 2))
        if rng.random() < 0.05:
            wave[5] = -1.0
        signals.append(SignalReceived(f"s{i}", SignalMeta(f"dev-{rng.integers(3)}"), 1000.0, 1.7e9, wave))
    return signals


@pytest.mark.parametrize("lengths", [(100,), (100, 97, 60)], ids=["one-length", "mixed-lengths"])
@pytest.mark.parametrize("centroid", [Centroid.FIRST, Centroid.MEAN])
def test_a_batch_gives_what_the_same_signals_give_one_by_one(lengths: tuple[int, ...], centroid: Centroid) -> None:
    signals = noisy_sequence(7, 300, lengths)
    settings = Settings(centroid=centroid, negative_voltage=NegativeVoltage.REJECT)
    whole, _, publisher = make(settings)
    together = run(whole, publisher, *signals)
    single, _, publisher = make(settings)
    alone = [event for signal in signals for event in run(single, publisher, signal)]
    assert together == alone
    assert {e.decline_reason is not None for e in together} == {True, False}
    assert len({e.label for e in together}) > 4


@pytest.mark.parametrize("lengths", [(100,), (100, 97, 60)], ids=["one-length", "mixed-lengths"])
def test_batches_that_open_with_long_runs_of_anomalies_give_what_one_by_one_gives(
    lengths: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch screens each device's first LAGS + 1 signals against its reference from before the batch
    at once; a later signal that still meets that reference (all before it were anomalies) is measured alone."""
    late: list[int] = []
    distance = Screen._distance

    def spy(screen: Screen, row: int, reference: int) -> float:
        if reference >= len(screen._device_ids):  # a reference from before the batch
            late.append(row)
        return distance(screen, row, reference)

    monkeypatch.setattr(Screen, "_distance", spy)
    signals = noisy_sequence(11, 400, lengths)
    settings = Settings(negative_voltage=NegativeVoltage.REJECT)
    batched, _, publisher = make(settings)
    together = [event for start in range(0, 400, 40) for event in run(batched, publisher, *signals[start : start + 40])]
    single, _, publisher = make(settings)
    alone = [event for signal in signals for event in run(single, publisher, signal)]
    assert together == alone
    assert late, "no chain met its reference from before the batch after more than LAGS anomalies"


def test_an_unlabelled_founding_leaves_no_cluster_for_the_anomalies_after_it() -> None:
    use_case, repo, publisher = make(Settings(cluster_scope=ClusterScope.SHARED), ids=FailingShared())
    events = run(use_case, publisher, sag(50.0, "a"), sag(50.0, "b"), sag(50.0, "c"))
    assert [(e.label, e.error_type) for e in events] == [
        (None, "LookupError"), ("shared/k1", None), ("shared/k1", None)
    ]
    assert repo.get_clusters("").clusters[0].members == 2


class FailingShared(DeviceScopedIds):
    def __init__(self) -> None:
        self.calls = 0

    def next_label(self, device_id: str, number: int) -> str:
        self.calls += 1
        if self.calls == 1:
            raise LookupError("not yet")
        return super().next_label(device_id, number)
