"""The candidate's batch stage: smoothing, downsampling, negative-voltage policy and profiles."""

from __future__ import annotations

import numpy as np
import pytest

from harness.contracts import SignalMeta, SignalReceived
from workers.candidate.domain.features import prepare_batch, profiles, smooth_batch, tumbling_mean
from workers.candidate.domain.settings import Features, NegativeVoltage, Settings
from workers.candidate.domain.shape import Ragged, resample, shape_profiles
from workers.legacy.algorithm import profile as legacy_profile
from workers.legacy.algorithm import smooth as legacy_smooth


def signal(samples: list[float] | np.ndarray, signal_id: str = "s", device: str = "d") -> SignalReceived:
    return SignalReceived(signal_id, SignalMeta(device), 1000.0, 0.0, np.asarray(samples, dtype=np.float32))


def test_smoothing_averages_non_overlapping_windows_and_a_partial_last_one() -> None:
    rows = np.array([[1, 2, 3, 4, 5, 6, 7]], dtype=np.float32)
    assert tumbling_mean(rows, 3).tolist() == [[2.0, 5.0, 7.0]]
    assert tumbling_mean(rows, 10).tolist() == [[4.0]]
    assert tumbling_mean(rows, 1).tolist() == [[1, 2, 3, 4, 5, 6, 7]]


def test_batch_smoothing_equals_the_legacy_per_signal_smoothing() -> None:
    rng = np.random.default_rng(1)
    signals = [signal(230 + rng.normal(0, 5, size=n), f"s{i}") for i, n in enumerate([1000, 1000, 997, 3, 1000])]
    rows, _ = smooth_batch(signals, Settings())
    for row, s in zip(rows, signals, strict=True):
        assert np.array_equal(row, legacy_smooth(s.samples))


def test_downsampling_keeps_every_kth_sample_before_smoothing() -> None:
    rows, _ = smooth_batch([signal(list(range(12)))], Settings(window_size=2, downsample=3))
    assert rows[0].tolist() == [1.5, 7.5]  # samples 0, 3 | 6, 9


def test_clip_sets_negative_samples_to_zero_before_smoothing() -> None:
    rows, negatives = smooth_batch(
        [signal([-4.0, 4.0])], Settings(window_size=2, negative_voltage=NegativeVoltage.CLIP)
    )
    assert rows[0].tolist() == [2.0] and negatives == [0]


def test_reject_counts_negative_samples_and_keep_does_not() -> None:
    samples = [-1.0, 5.0, -2.0, 3.0]
    assert smooth_batch([signal(samples)], Settings(negative_voltage=NegativeVoltage.REJECT))[1] == [2]
    assert smooth_batch([signal(samples)], Settings())[1] == [0]


def test_a_first_signal_is_compared_with_a_flat_line_at_its_own_median() -> None:
    batch = prepare_batch([signal([230.0] * 100, "flat")], Settings(), {"d": None})
    assert batch.anomalies == [] and "d" in batch.references


def test_a_reference_of_another_length_is_replaced_by_the_flat_median() -> None:
    batch = prepare_batch([signal([230.0] * 100)], Settings(), {"d": np.zeros(3)})
    assert batch.anomalies == []


def test_each_normal_signal_is_the_reference_of_its_devices_next_one_within_a_batch() -> None:
    signals = [signal([230.0] * 100, "a"), signal([231.0] * 100, "b"), signal([232.0] * 100, "c")]
    batch = prepare_batch(signals, Settings(), {"d": None})
    assert batch.anomalies == [] and batch.device_ids == ["d", "d", "d"]
    assert batch.references["d"].tolist() == [232.0] * 10


def test_anomaly_profiles_equal_the_legacy_profile() -> None:
    rng = np.random.default_rng(2)
    deviations = [rng.normal(0, 20, size=n) for n in (100, 100, 37, 1)]
    for mine, deviation in zip(profiles(deviations), deviations, strict=True):
        assert mine == pytest.approx(legacy_profile(deviation), rel=1e-12, abs=1e-12)


def test_a_one_sample_deviation_has_zero_roughness() -> None:
    (only,) = profiles([np.array([3.0])])
    assert only.tolist() == [3.0, 0.0, 3.0, 3.0, 0.0]


def test_resampling_interpolates_linearly_and_keeps_both_ends() -> None:
    rows = np.array([[0.0, 10.0, 20.0], [5.0, 5.0, 7.0]])
    assert resample(rows, 5).tolist() == [[0.0, 5.0, 10.0, 15.0, 20.0], [5.0, 5.0, 5.0, 6.0, 7.0]]
    assert resample(rows, 2).tolist() == [[0.0, 20.0], [5.0, 7.0]]
    assert resample(np.array([[3.0]]), 4).tolist() == [[3.0] * 4]


def test_a_shape_profile_is_the_z_normalised_shape_and_the_log_amplitude() -> None:
    row = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 9.0, 4.0, 1.0])
    (profile,) = shape_profiles([row], 8, amplitude_weight=2.0)
    shape = profile[:8] * np.sqrt(8)
    assert shape.mean() == pytest.approx(0.0, abs=1e-12) and shape.std() == pytest.approx(1.0)
    assert profile[8] == pytest.approx(2.0 * np.log(row.std()))


def test_the_same_waveform_at_another_size_and_level_differs_only_in_amplitude() -> None:
    wave = np.sin(np.linspace(0, 3, 50))
    small, large = shape_profiles([wave, 230.0 + 40.0 * wave], 16, amplitude_weight=1.0)
    assert np.allclose(small[:16], large[:16])
    assert large[16] - small[16] == pytest.approx(np.log(40.0))


def test_shape_distances_lie_in_zero_to_two_whatever_the_length() -> None:
    wave = np.linspace(0.0, 1.0, 40)
    for length in (4, 32, 200):
        rising, falling = shape_profiles([wave, wave[::-1]], length, amplitude_weight=0.0)
        assert np.linalg.norm(rising - falling) == pytest.approx(2.0)


def test_a_square_and_a_triangle_of_equal_energy_have_distinct_shapes() -> None:
    square = np.r_[np.zeros(30), np.full(40, 2.0), np.zeros(30)]
    triangle = np.r_[np.zeros(30), np.interp(np.arange(40), [0, 19.5, 39], [0, 1, 0]), np.zeros(30)]
    triangle *= np.sqrt((square**2).sum() / (triangle**2).sum())
    one, other = shape_profiles([square, triangle], 32, amplitude_weight=1.0)
    assert np.linalg.norm(one - other) > 0.3


def test_a_flat_signal_gets_a_zero_shape_and_a_finite_amplitude() -> None:
    (profile,) = shape_profiles([np.full(20, 5.0)], 8, amplitude_weight=1.0)
    assert profile[:8].tolist() == [0.0] * 8 and np.isfinite(profile[8])


def test_shape_mode_profiles_anomalies_from_the_smoothed_signal() -> None:
    samples = np.r_[np.full(50, 230.0), np.full(50, 180.0)]
    settings = Settings(features=Features.SHAPE, shape_length=8)
    batch = prepare_batch([signal(samples)], settings, {"d": np.full(10, 230.0)})
    assert batch.anomalies == [0] and batch.profiles.shape == (1, 9)
    profile = batch.profiles[0]
    (expected,) = shape_profiles([legacy_smooth(samples.astype(np.float32))], 8, 1.0)
    assert profile.tolist() == expected.tolist()


def test_ragged_medians_equal_numpy_medians_to_the_bit_for_odd_even_and_single_rows() -> None:
    rng = np.random.default_rng(3)
    rows = [rng.normal(0, 10, size=n) for n in (1, 2, 3, 10, 11, 134)]
    assert Ragged.of(rows).medians().tolist() == [float(np.median(row)) for row in rows]


def test_ragged_resampling_equals_per_row_resampling_whatever_the_lengths() -> None:
    rng = np.random.default_rng(4)
    rows = [rng.normal(0, 1, size=n) for n in (1, 2, 5, 16, 17, 100)]
    batch = Ragged.of(rows).resample(16)
    for row, resampled in zip(rows, batch, strict=True):
        assert resampled.tolist() == resample(row[None, :], 16)[0].tolist()


def test_shape_profiles_of_a_mixed_batch_equal_each_rows_own_profile() -> None:
    rng = np.random.default_rng(5)
    rows = [np.cumsum(rng.normal(0, 1, size=n)) for n in (20, 7, 20, 133)]
    together = shape_profiles(rows, 16, amplitude_weight=0.5)
    for row, profile in zip(rows, together, strict=True):
        assert profile == pytest.approx(shape_profiles([row], 16, amplitude_weight=0.5)[0], rel=1e-12, abs=1e-12)


def test_a_batch_of_mixed_lengths_is_screened_against_each_signals_own_median() -> None:
    rng = np.random.default_rng(6)
    signals = [signal(230 + rng.normal(0, 3, size=n), f"s{i}", f"d{i % 2}") for i, n in enumerate([200, 310, 97, 200])]
    batch = prepare_batch(signals, Settings(noise_threshold=0.5), {"d0": None, "d1": np.zeros(5)})
    assert batch.anomalies == [0, 1, 2, 3]
    for profile, s in zip(batch.profiles, signals, strict=True):
        row = legacy_smooth(s.samples)
        assert profile == pytest.approx(legacy_profile(row - np.median(row)), rel=1e-12, abs=1e-12)


def test_quantile_parts_are_blind_to_where_an_event_starts_and_keep_distances_within_two() -> None:
    early = np.r_[np.zeros(10), np.full(30, 5.0), np.linspace(5.0, 2.0, 60)]
    late = np.r_[np.zeros(40), np.full(30, 5.0), np.linspace(5.0, 2.0, 30)]
    sorted_early, sorted_late = (ragged.tolist() for ragged in Ragged.of([early, late]).sorted().rows())
    assert sorted_early == sorted(early.tolist()) and sorted_late == sorted(late.tolist())
    one, other = shape_profiles([early, late], 16, amplitude_weight=0.0, quantiles=True)
    assert one.shape == (33,) and np.linalg.norm(one[16:32] - other[16:32]) < np.linalg.norm(one[:16] - other[:16])
    rising, falling = shape_profiles([np.linspace(0, 1, 40), np.linspace(1, 0, 40)], 16, 0.0, quantiles=True)
    assert np.linalg.norm(rising - falling) == pytest.approx(np.sqrt(2.0))  # waveforms opposite, quantiles equal
