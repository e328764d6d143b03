"""Fuzzy memberships (exact corners), lag features, zigzag labels on a hand-made path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from ktrdr_core.training import fuzzy
from ktrdr_core.training.features import add_lags, feature_matrix, lag_name
from ktrdr_core.training.labels import (
    BUY,
    HOLD,
    SELL,
    UNKNOWN,
    label_distribution,
    zigzag_labels,
)
from ktrdr_core.training.strategy import FuzzySetConfig


def test_triangular_corners() -> None:
    x = [0.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0]
    assert_array_equal(fuzzy.triangular(x, 10, 20, 30), [0, 0, 0.5, 1, 0.5, 0, 0])


def test_triangular_shoulders() -> None:
    assert_array_equal(fuzzy.triangular([-1.0, 0.0, 5.0, 10.0], 0, 0, 10), [0, 1, 0.5, 0])
    assert_array_equal(fuzzy.triangular([0.0, 5.0, 10.0, 11.0], 0, 10, 10), [0, 0.5, 1, 0])


def test_trapezoidal_corners() -> None:
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert_array_equal(fuzzy.trapezoidal(x, 1, 3, 5, 7), [0, 0, 0.5, 1, 1, 1, 0.5, 0])


def test_trapezoidal_infinite_shoulders() -> None:
    x = [-1e9, 0.0, 0.15, 0.3, 5.0]
    assert_array_equal(fuzzy.trapezoidal(x, -math.inf, -math.inf, 0.0, 0.3), [1, 1, 0.5, 0, 0])
    assert_array_equal(fuzzy.trapezoidal(x, 0.0, 0.3, math.inf, math.inf), [0, 0, 0.5, 1, 1])


def test_gaussian_points() -> None:
    assert_allclose(fuzzy.gaussian([5.0, 7.0, 3.0], 5.0, 2.0), [1, math.exp(-0.5), math.exp(-0.5)])


def test_nan_stays_nan() -> None:
    for values in (
        fuzzy.triangular([np.nan], 0, 1, 2),
        fuzzy.trapezoidal([np.nan], 0, 1, 2, 3),
        fuzzy.gaussian([np.nan], 0, 1),
    ):
        assert np.isnan(values[0])


def test_fuzzify_names_columns_and_zeroes_tiny_tails() -> None:
    sets = {
        "rsi": (
            FuzzySetConfig("low", "triangular", (0, 0, 50)),
            FuzzySetConfig("mid", "gaussian", (50.0, 1.0)),
        )
    }
    out = fuzzy.fuzzify({"rsi": np.array([0.0, 25.0, 100.0])}, sets)
    assert list(out) == ["rsi_low", "rsi_mid"]
    assert_array_equal(out["rsi_low"], [1, 0.5, 0])
    assert out["rsi_mid"][0] == 0.0  # exp(-1250) would be a denormal-breeding speck


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20),
    st.lists(st.floats(-100, 100), min_size=4, max_size=4),
)
def test_memberships_are_between_0_and_1(x: list[float], params: list[float]) -> None:
    a, b, c, d = sorted(params)
    for values in (
        fuzzy.triangular(x, a, b, d) if a < d else np.zeros(1),
        fuzzy.trapezoidal(x, a, b, c, d),
        fuzzy.gaussian(x, b, abs(c - b) + 0.1),
    ):
        assert ((values >= 0) & (values <= 1)).all()


def test_lags_are_named_and_shifted() -> None:
    out = add_lags({"a": np.array([1.0, 2, 3, 4]), "b": np.array([5.0, 6, 7, 8])}, 2)
    assert list(out) == ["a", "b", "a_lag_1", "a_lag_2", "b_lag_1", "b_lag_2"]
    assert lag_name("rsi_low", 3) == "rsi_low_lag_3"
    assert_array_equal(out["a_lag_1"], [np.nan, 1, 2, 3])
    assert_array_equal(out["b_lag_2"], [np.nan, np.nan, 5, 6])
    matrix, names = feature_matrix({"a": np.array([1.0, 2, 3])}, 1)
    assert names == ["a", "a_lag_1"] and matrix.dtype == np.float32
    assert_array_equal(matrix[1:], [[2, 1], [3, 2]])


def test_zigzag_labels_on_a_hand_made_path() -> None:
    close = [100, 101, 102.5, 101, 99, 97, 98, 100, 100.5, 103]
    # threshold 2 %, look 3 bars ahead; the level reached first decides:
    # 0: 102.5 >= 102 -> BUY          1: stays in (98.98, 103.02) -> HOLD
    # 2: 99 <= 100.45 -> SELL         3: 97 <= 98.98 -> SELL
    # 4: 97 <= 97.02 -> SELL          5: 100 >= 98.94 -> BUY
    # 6: 100 >= 99.96 -> BUY          7: 103 >= 102 (window cut short, but hit) -> BUY
    # 8: 103 >= 102.51 -> BUY         9: nothing left to see -> UNKNOWN
    expected = [BUY, HOLD, SELL, SELL, SELL, BUY, BUY, BUY, BUY, UNKNOWN]
    assert_array_equal(zigzag_labels(close, 0.02, 3), expected)


def test_zigzag_first_crossing_wins_and_encoding() -> None:
    assert (BUY, HOLD, SELL) == (0, 1, 2)
    assert zigzag_labels([100, 97, 103], 0.02, 2)[0] == SELL
    assert zigzag_labels([100, 103, 97], 0.02, 2)[0] == BUY
    # no move within the horizon and a complete window -> HOLD; incomplete -> UNKNOWN
    assert_array_equal(zigzag_labels([100, 100.5, 100.2, 100.1], 0.02, 2), [HOLD, HOLD, UNKNOWN, UNKNOWN])
    assert label_distribution(np.array([0, 0, 1, 2, -1])) == {"BUY": 2, "HOLD": 1, "SELL": 1}


def test_zigzag_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        zigzag_labels([1.0, 2.0], 0.0, 3)
    with pytest.raises(ValueError):
        zigzag_labels([1.0, 2.0], 0.1, 0)


def test_feature_matrix_is_the_columns_and_their_lags_in_float32() -> None:
    rng = np.random.default_rng(3)
    columns = {name: np.where(rng.random(50) < 0.1, np.nan, rng.normal(size=50)) for name in "abc"}
    matrix, names = feature_matrix(columns, 3)
    lagged = add_lags(columns, 3)
    assert names == list(lagged)
    expected = np.column_stack([lagged[name] for name in names]).astype(np.float32)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.float32


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_feature_matrix_with_fewer_rows_than_lags(rows: int) -> None:
    columns = {"a": np.arange(rows, dtype=float)}
    matrix, names = feature_matrix(columns, 3)
    assert matrix.shape == (rows, 4) and names[1:] == ["a_lag_1", "a_lag_2", "a_lag_3"]
    lagged = add_lags(columns, 3)
    expected = (
        np.column_stack([lagged[n] for n in names]).astype(np.float32)
        if rows
        else np.empty((0, 4), dtype=np.float32)
    )
    np.testing.assert_array_equal(matrix, expected)
    assert np.isnan(matrix[:, 3]).all()  # the third lag exists in no row
