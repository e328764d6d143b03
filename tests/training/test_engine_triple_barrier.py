"""Triple-barrier labels: hand-computed series, volatility units, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from ktrdr_core.training.labels import (
    BUY,
    HOLD,
    SELL,
    UNKNOWN,
    barrier_volatility,
    triple_barrier_labels,
)

U = UNKNOWN


def test_fixed_fraction_barriers_by_hand() -> None:
    close = [100, 101, 102.5, 99, 98, 100, 103, 100, 100.5, 99.5, 100.2, 100, 100, 100]
    labels = triple_barrier_labels(close, pt=0.02, sl=0.01, horizon=3, vol_method="fixed")
    # t=0: up 102 / down 99: 102.5 (t+2) comes before 99 (t+3)          -> BUY
    # t=1: up 103.02 / down 99.99: 99 at t+2                             -> SELL
    # t=8: down 99.495: 99.5 comes close but does not touch              -> HOLD (time barrier)
    # the last 3 bars (the horizon) get no label
    assert labels.tolist() == [BUY, SELL, SELL, SELL, BUY, BUY, SELL, HOLD, HOLD, HOLD, HOLD, U, U, U]


def test_atr_barriers_by_hand() -> None:
    # every bar spans exactly 1.0 and moves at most 0.5: the true range, hence ATR(3), is 1.0,
    # so pt 1.9 / sl 0.9 ATRs put the barriers at close + 1.9 and close - 0.9
    close = np.array([100, 100.5, 100, 100.5, 101, 101.5, 102, 102.5, 102, 101.5, 101, 100.5, 100, 100, 100])
    labels = triple_barrier_labels(
        close, close + 0.5, close - 0.5, pt=1.9, sl=0.9, horizon=4, vol_method="atr", vol_span=3
    )
    # t<3: ATR still warming up; t=3: 102.5 >= 102.4 at t+4; t=4, 5: neither; t=6..10: a close
    # 0.9 below within the horizon; the last 4 bars: no label
    assert labels.tolist() == [U, U, U, BUY, HOLD, HOLD, SELL, SELL, SELL, SELL, SELL, U, U, U, U]
    np.testing.assert_allclose(
        barrier_volatility(close, close + 0.5, close - 0.5, "atr", 3)[3:], 1.0 / close[3:]
    )


def test_close_volatility_is_the_ewm_std_of_returns() -> None:
    steps = np.where(np.arange(400) % 2 == 0, 1.01, 1 / 1.01)  # returns +1 %, -0.99 %, ...
    close = 100 * np.cumprod(steps)
    vol = barrier_volatility(close, None, None, "close", 20)
    assert np.isnan(vol[:20]).all() and np.isfinite(vol[20:]).all()
    assert vol[-1] == pytest.approx(0.00995, rel=0.02)  # the std of +-0.995 % returns
    # barriers of 1 volatility unit are touched by the next bar's 1 % move
    labels = triple_barrier_labels(close, pt=0.9, sl=0.9, horizon=1, vol_method="close", vol_span=20)
    assert set(labels[21:-1].tolist()) == {BUY, SELL}


def test_no_look_ahead_beyond_the_horizon() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    high, low = close * 1.004, close * 0.996
    horizon = 10
    for method in ("atr", "close", "fixed"):
        pt, sl = (0.02, 0.02) if method == "fixed" else (2.0, 1.5)
        base = triple_barrier_labels(
            close, high, low, pt=pt, sl=sl, horizon=horizon, vol_method=method, vol_span=20
        )
        assert {BUY, HOLD, SELL} <= set(base.tolist())
        for cut in (100, 333, 550):
            changed = close.copy()
            changed[cut:] *= rng.uniform(0.5, 1.5, len(close) - cut)
            other = triple_barrier_labels(
                changed,
                changed * 1.004,
                changed * 0.996,
                pt=pt,
                sl=sl,
                horizon=horizon,
                vol_method=method,
                vol_span=20,
            )
            # a bar's label reads only the bars up to its time barrier
            assert (other[: cut - horizon] == base[: cut - horizon]).all(), (method, cut)
            assert (other[cut - horizon :] != base[cut - horizon :]).any()  # the change does matter
        assert (base[-horizon:] == UNKNOWN).all()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        triple_barrier_labels([1.0, 2.0], pt=0.0, sl=1.0, horizon=2, vol_method="fixed")
    with pytest.raises(ValueError, match="look-ahead must be at least 1"):
        triple_barrier_labels([1.0, 2.0], pt=1.0, sl=1.0, horizon=0, vol_method="fixed")
    with pytest.raises(ValueError, match="vol_method"):
        barrier_volatility(np.ones(5), None, None, "parkinson", 3)
