"""The synthetic source: deterministic, realistic enough, and labelled with each signal's kind."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.metrics import adjusted_rand_score

from harness.backtest import InProcessWorker
from harness.producer.synthetic import KINDS, SHAPE_KINDS, _ramp, generate_signals
from workers.legacy.algorithm import profile as legacy_profile

SHAPE_CANDIDATE = {  # the demo's shape candidate (docs/algorithm.md)
    "HARNESS_CANDIDATE_FEATURES": "shape",
    "HARNESS_CANDIDATE_CLUSTER_SCOPE": "shared",
    "HARNESS_CANDIDATE_SIMILARITY_SCALE": "1",
    "HARNESS_CANDIDATE_SIMILARITY_THRESHOLD": "0.4",
    "HARNESS_CANDIDATE_AMPLITUDE_WEIGHT": "0.3",
}


def test_the_same_seed_gives_the_same_signals_and_another_seed_other_ones() -> None:
    one, again, other = (list(generate_signals(50, seed)) for seed in (3, 3, 4))
    assert all(np.array_equal(a.samples, b.samples) and a.meta == b.meta for a, b in zip(one, again, strict=True))
    assert not any(np.array_equal(a.samples, b.samples) for a, b in zip(one, other, strict=True))


def test_a_longer_run_starts_with_the_signals_of_a_shorter_one() -> None:
    short, long = list(generate_signals(300, 9)), list(generate_signals(700, 9))
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(short, long[:300], strict=True))


def test_ids_devices_and_shape_follow_the_arguments() -> None:
    signals = list(generate_signals(400, seed=2, devices=3, samples=250, rate_hz=500.0, start_time=100.0))
    assert [s.signal_id for s in signals[:2]] == ["sig-2-0000000", "sig-2-0000001"]
    assert {s.meta.device_id for s in signals} == {"dev-00", "dev-01", "dev-02"}
    assert all(s.samples.dtype == np.float32 and s.samples.shape == (250,) for s in signals)
    assert all(s.sample_rate_hz == 500.0 and "site" in s.meta.tags for s in signals)
    starts = [s.start_time for s in signals]
    assert starts[0] == 100.0 and starts == sorted(starts)


def test_about_half_the_signals_are_normal_and_every_kind_occurs() -> None:
    kinds = Counter(s.meta.true_kind for s in generate_signals(4000, seed=1))
    assert set(kinds) == set(KINDS)
    assert 0.45 < kinds["normal"] / 4000 < 0.55
    assert min(kinds.values()) > 200


def test_normal_signals_sit_near_their_devices_nominal_level() -> None:
    normals = [s for s in generate_signals(500, seed=1) if s.meta.true_kind == "normal"]
    levels = {s.meta.device_id: float(np.mean(s.samples)) for s in normals}
    assert all(220.0 < level < 240.0 for level in levels.values())
    assert all(0.6 < float(np.std(s.samples)) < 1.5 for s in normals)


def test_only_negative_glitches_go_below_zero_volts() -> None:
    below = {s.meta.true_kind for s in generate_signals(3000, seed=6) if (s.samples < 0).any()}
    assert below == {"negative_glitch"}


def test_shape_kinds_replace_a_share_of_the_signals_and_leave_every_other_one_as_it_was() -> None:
    plain, shaped = list(generate_signals(1000, 5)), list(generate_signals(1000, 5, shape_share=0.1))
    replaced = [s.meta.true_kind in SHAPE_KINDS for s in shaped]
    assert 60 < sum(replaced) < 140 and {s.meta.true_kind for s in shaped} >= set(SHAPE_KINDS)
    assert all(np.array_equal(a.samples, b.samples) and a.meta == b.meta
               for a, b, r in zip(plain, shaped, replaced, strict=True) if not r)
    assert not any(s.meta.true_kind in SHAPE_KINDS for s in plain)


def test_the_two_shape_kinds_have_equal_summary_statistics() -> None:
    for seed in range(20):
        rising, falling = np.zeros(1000, dtype=np.float32), np.zeros(1000, dtype=np.float32)
        _ramp(rising, np.random.default_rng(seed), rising=True)
        _ramp(falling, np.random.default_rng(seed), rising=False)
        assert not np.array_equal(rising, falling)
        one, other = legacy_profile(rising.astype(np.float64)), legacy_profile(falling.astype(np.float64))
        assert np.allclose(one, other, rtol=1e-12, atol=1e-9)  # the same values in reverse order


def test_only_a_shape_aware_candidate_tells_the_shape_kinds_apart() -> None:
    signals = list(generate_signals(1500, 1, shape_share=0.1))
    shaped = [i for i, s in enumerate(signals) if s.meta.true_kind in SHAPE_KINDS]
    truth = [signals[i].meta.true_kind for i in shaped]

    def shape_kind_ari(spec: str, env: dict[str, str]) -> float:
        results = InProcessWorker.load(spec, env).run(signals)
        return float(adjusted_rand_score(truth, [results[i].label or results[i].outcome for i in shaped]))

    assert shape_kind_ari("legacy", {}) < 0.05
    assert shape_kind_ari("candidate", SHAPE_CANDIDATE) > 0.6
