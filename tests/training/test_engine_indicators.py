"""Indicators against small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ktrdr_core.training import indicators as ind

nan = np.nan


def test_sma_hand_computed() -> None:
    assert_allclose(ind.sma([1, 2, 3, 4, 6], 3), [nan, nan, 2, 3, 13 / 3])


def test_ema_is_sma_seeded_then_recursive() -> None:
    # alpha = 2 / (3 + 1) = 0.5; seed = mean(2, 4, 6) = 4 at index 2
    # index 3: 0.5 * 8 + 0.5 * 4 = 6; index 4: 0.5 * 4 + 0.5 * 6 = 5
    assert_allclose(ind.ema([2, 4, 6, 8, 4], 3), [nan, nan, 4, 6, 5])


def test_ema_skips_leading_nans() -> None:
    assert_allclose(ind.ema([nan, 2, 4, 6, 8], 3), [nan, nan, nan, 4, 6])


def test_rsi_wilder_hand_computed() -> None:
    # changes: +1 +1 -1 +2 -1; seed avg gain 2/3, avg loss 1/3 (RS 2)
    # then gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2 + 0)/3 = 2/9 (RS 5)
    # then gain (10/9*2)/3 = 20/27, loss (2/9*2 + 1)/3 = 13/27 (RS 20/13)
    expected = [nan, nan, nan, 100 - 100 / 3, 100 - 100 / 6, 100 - 100 / (1 + 20 / 13)]
    assert_allclose(ind.rsi([10, 11, 12, 11, 13, 12], 3), expected)


def test_rsi_edge_cases() -> None:
    assert ind.rsi(np.arange(10.0), 3)[-1] == 100.0  # only gains
    assert ind.rsi(np.arange(10.0)[::-1], 3)[-1] == 0.0  # only losses
    assert ind.rsi(np.full(10, 5.0), 3)[-1] == 50.0  # no change at all
    assert np.isnan(ind.rsi([1.0, 2.0, 3.0], 3)).all()  # too short


def test_macd_line_signal_histogram() -> None:
    # fast EMA(2): 2, 2, 4, 4, 16/3 from index 1; slow EMA(3): 2, 3.5, 3.75, 4.875 from index 2
    line, signal, hist = ind.macd([1, 3, 2, 5, 4, 6], 2, 3, 2)
    assert_allclose(line, [nan, nan, 0, 0.5, 0.25, 16 / 3 - 4.875])
    # signal EMA(2) of the line, seeded with mean(0, 0.5) at index 3
    sig5 = 2 / 3 * (16 / 3 - 4.875) + 1 / 3 * 0.25
    assert_allclose(signal, [nan, nan, nan, 0.25, 0.25, sig5])
    assert_allclose(hist, [nan, nan, nan, 0.25, 0.0, (16 / 3 - 4.875) - sig5])


def test_macd_refuses_fast_not_below_slow() -> None:
    with pytest.raises(ValueError):
        ind.macd([1.0] * 40, 26, 12, 9)


def test_bollinger_percent_b() -> None:
    # window [1, 2, 3]: mean 2, population std sqrt(2/3); with 1 std: %B of 3
    std = math.sqrt(2 / 3)
    expected = (3 - (2 - std)) / (2 * std)
    assert_allclose(ind.bollinger_percent_b([1, 2, 3], 3, 1.0), [nan, nan, expected])
    assert ind.bollinger_percent_b([4, 4, 4], 3)[-1] == 0.5  # a band with no width


def test_atr_wilder() -> None:
    high, low, close = [10, 11, 12, 11], [9, 10, 10, 9], [9.5, 10.5, 11, 10]
    # true range: -, 1.5, 2, 2; seed (1.5 + 2)/2 = 1.75; then (1.75 + 2)/2 = 1.875
    assert_allclose(ind.true_range(high, low, close), [nan, 1.5, 2, 2])
    assert_allclose(ind.atr(high, low, close, 2), [nan, nan, 1.75, 1.875])


def test_roc_percent() -> None:
    assert_allclose(ind.roc([100, 110, 121, 99], 2), [nan, nan, 21.0, (99 / 110 - 1) * 100])


def test_relative_variants_are_percent_of_price() -> None:
    price = np.array([10.0, 12, 14, 16])
    ohlcv = {"open": price, "high": price, "low": price, "close": price, "volume": price}
    distance = ind.compute_indicator("sma", 2, {"relative": True}, "close", ohlcv)
    assert_allclose(distance, [nan, (12 / 11 - 1) * 100, (14 / 13 - 1) * 100, (16 / 15 - 1) * 100])
    raw = ind.compute_indicator("sma", 2, {}, "close", ohlcv)
    assert_allclose(raw, [nan, 11, 13, 15])
    hist = ind.compute_indicator("macd", None, {"fast_period": 2, "slow_period": 3,
                                                "signal_period": 2, "output": "line",
                                                "relative": True}, "close", ohlcv)
    line = ind.macd(price, 2, 3, 2)[0]
    assert_allclose(hist, line / price * 100)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0), min_size=30, max_size=80), st.integers(2, 20))
def test_bounded_indicators_stay_in_range(prices: list[float], period: int) -> None:
    values = ind.rsi(prices, period)
    valid = values[~np.isnan(values)]
    assert len(valid) == len(prices) - period
    assert ((valid >= 0) & (valid <= 100)).all()
    smooth = ind.sma(prices, period)
    assert np.isnan(smooth[: period - 1]).all() and not np.isnan(smooth[period - 1:]).any()
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(prices), period)
    assert (smooth[period - 1:] <= windows.max(axis=1) + 1e-9).all()


@settings(max_examples=25, deadline=None)
@given(st.floats(0.5, 500.0), st.integers(1, 15))
def test_averages_of_a_constant_are_the_constant(value: float, period: int) -> None:
    series = np.full(40, value)
    assert_allclose(ind.sma(series, period)[period - 1:], value)
    assert_allclose(ind.ema(series, period)[period - 1:], value)
