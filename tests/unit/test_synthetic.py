"""The synthetic source: deterministic, realistic enough, and labelled with each signal's kind."""

from __future__ import annotations

from collections import Counter

import numpy as np

from harness.producer.synthetic import KINDS, generate_signals


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
