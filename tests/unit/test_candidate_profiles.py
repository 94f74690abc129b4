"""The deviation profile's statistics: numpy's mean and std, to the bit, with the mean computed once."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workers.candidate.domain.features import profile_matrix

VALUES = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


def numpy_profiles(matrix: np.ndarray) -> np.ndarray:
    """What profile_matrix computed before it shared the mean: numpy's own calls."""
    roughness = np.abs(np.diff(matrix, axis=1)).mean(axis=1) if matrix.shape[1] > 1 else np.zeros(matrix.shape[0])
    return np.stack(
        [matrix.mean(axis=1), matrix.std(axis=1), matrix.min(axis=1), matrix.max(axis=1), roughness], axis=1
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    both_nan = np.isnan(a) & np.isnan(b)
    return a.shape == b.shape and bool(np.all(both_nan | (a.view(np.int64) == b.view(np.int64))))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.integers(1, 300), st.data())
def test_profiles_equal_numpys_mean_std_min_max_and_roughness_bit_for_bit(
    rows: int, length: int, data: st.DataObject
) -> None:
    matrix = data.draw(arrays(np.float64, (rows, length), elements=VALUES))
    with np.errstate(all="ignore"):  # inf - inf, squares past the largest float
        assert same_bits(profile_matrix(matrix), numpy_profiles(matrix))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0, 40), st.sampled_from([1, 2, 7, 100, 129, 1000]))
def test_profiles_of_values_of_wide_range_equal_numpys(seed: int, spread: float, length: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((20, length)) * np.exp(rng.uniform(-spread, spread, (20, length)))
    assert same_bits(profile_matrix(matrix), numpy_profiles(matrix))


def test_profiles_are_read_only() -> None:
    assert not profile_matrix(np.ones((2, 3))).flags.writeable
