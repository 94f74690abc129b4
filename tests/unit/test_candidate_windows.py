"""Window sums by columns: the same bits as np.add.reduceat, whatever the values and the window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workers.candidate.domain import windows
from workers.candidate.domain.windows import sums_by_columns, tiled_window_sums

# float32 samples of any magnitude and sign (zeros of both signs, subnormals, infinities, NaN), as float64
SAMPLES = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except that any NaN matches any NaN (their payloads never reach a label)."""
    both_nan = np.isnan(a) & np.isnan(b)
    return a.shape == b.shape and bool(np.all(both_nan | (a.view(np.int64) == b.view(np.int64))))


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(1, 32), st.integers(1, 40))
def test_sums_by_columns_match_reduceat_bit_for_bit(data: st.DataObject, window: int, count: int) -> None:
    flat = data.draw(arrays(np.float32, count * window, elements=SAMPLES)).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, and sums past the largest float
        expected = np.add.reduceat(flat, np.arange(0, flat.size, window))
        assert same_bits(sums_by_columns(flat.reshape(count, window)), expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 32), st.integers(0, 2**32 - 1), st.floats(0, 40))
def test_sums_by_columns_match_reduceat_on_values_of_wide_range(window: int, seed: int, spread: float) -> None:
    """Many windows of values whose magnitudes differ by up to e^80: every addition rounds."""
    rng = np.random.default_rng(seed)
    flat = (rng.standard_normal(50 * window) * np.exp(rng.uniform(-spread, spread, 50 * window))).astype(np.float32)
    flat[rng.random(flat.size) < 0.1] *= 0.0  # zeros, of both signs
    expected = np.add.reduceat(flat.astype(np.float64), np.arange(0, flat.size, window))
    assert same_bits(sums_by_columns(flat.astype(np.float64).reshape(-1, window)), expected)


def test_windows_longer_than_a_pairwise_block_are_halved_as_numpy_does() -> None:
    rng = np.random.default_rng(3)
    for window in (129, 137, 300):
        flat = (rng.standard_normal(7 * window) * np.exp(rng.uniform(-30, 30, 7 * window))).astype(np.float64)
        expected = np.add.reduceat(flat, np.arange(0, flat.size, window))
        assert same_bits(sums_by_columns(flat.reshape(-1, window)), expected)


def test_only_many_narrow_windows_take_the_column_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    wide = windows.COLUMNS_UP_TO + 1
    flat = rng.normal(230, 5, 10 * wide * windows.COLUMNS_FROM)
    calls: list[int] = []
    monkeypatch.setattr(windows, "sums_by_columns", lambda w: calls.append(w.shape[1]) or sums_by_columns(w))
    for window, size in ((10, flat.size), (10, 100), (wide, flat.size)):
        expected = np.add.reduceat(flat[:size], np.arange(0, size, window))
        assert same_bits(tiled_window_sums(flat[:size], window), expected)
    assert calls == [10]  # a few windows, or wide ones, are cheaper for reduceat
    assert tiled_window_sums(np.empty(0), 10).shape == (0,)
