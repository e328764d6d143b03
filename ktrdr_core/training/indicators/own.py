"""The few indicator computations TA-Lib does not have, on numpy arrays.

Each takes float64 arrays and returns arrays of the same length with NaN
during the warm-up; every value at bar ``t`` uses bars ``<= t`` only (the
recursive ones are explicit loops for that reason: a stateful scan forward in
time).
"""

from __future__ import annotations

import numpy as np

__all__ = ["causal_zigzag", "supertrend", "weighted_4"]


def weighted_4(x: np.ndarray) -> np.ndarray:
    """``(x[t-3] + 2 x[t-2] + 2 x[t-1] + x[t]) / 6``, NaN for the first 3 bars (RVI's smoothing)."""
    out = np.full(x.shape, np.nan)
    if len(x) >= 4:
        out[3:] = (x[:-3] + 2.0 * x[1:-2] + 2.0 * x[2:-1] + x[3:]) / 6.0
    return out


def supertrend(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, atr: np.ndarray, multiplier: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(trend line, direction)``: the band that trails price, +1 up / -1 down.

    Basic bands are ``(high + low) / 2 ± multiplier * atr``; the final upper
    band only moves down (the lower only up) unless the previous close broke
    through it; the trend flips when the close crosses the band in force.
    """
    n = len(close)
    trend = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    valid = np.flatnonzero(np.isfinite(atr))
    if not len(valid):
        return trend, direction
    mid = (high + low) / 2.0
    upper_basic = (mid + multiplier * atr).tolist()
    lower_basic = (mid - multiplier * atr).tolist()
    closes = close.tolist()
    start = int(valid[0])
    upper, lower = upper_basic[start], lower_basic[start]
    up = closes[start] > lower
    trend_out = trend.tolist()
    dir_out = direction.tolist()
    trend_out[start] = lower if up else upper
    dir_out[start] = 1.0 if up else -1.0
    for t in range(start + 1, n):
        prev_close = closes[t - 1]
        ub, lb = upper_basic[t], lower_basic[t]
        upper = ub if (ub < upper or prev_close > upper) else upper
        lower = lb if (lb > lower or prev_close < lower) else lower
        c = closes[t]
        if up and c < lower:
            up = False
        elif not up and c > upper:
            up = True
        trend_out[t] = lower if up else upper
        dir_out[t] = 1.0 if up else -1.0
    return np.asarray(trend_out), np.asarray(dir_out)


def causal_zigzag(price: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(last confirmed pivot price, leg direction)`` as known at each bar.

    A swing high is confirmed only once price has fallen ``threshold`` (a
    fraction) below it, and a swing low once price has risen that much, so a
    bar never sees a pivot that later bars create. Direction is +1 in an up
    leg, -1 in a down leg; both are NaN until the first pivot is confirmed.
    """
    n = len(price)
    pivot = [float("nan")] * n
    direction = [float("nan")] * n
    values = price.tolist()
    if not n:
        return np.asarray(pivot), np.asarray(direction)
    first = values[0]
    leg = 0
    extreme = first
    last_pivot = float("nan")
    for t in range(n):
        p = values[t]
        if leg == 0:
            if p >= first * (1.0 + threshold):
                leg, last_pivot, extreme = 1, min(values[: t + 1]), p
            elif p <= first * (1.0 - threshold):
                leg, last_pivot, extreme = -1, max(values[: t + 1]), p
        elif leg == 1:
            if p > extreme:
                extreme = p
            elif p <= extreme * (1.0 - threshold):
                leg, last_pivot, extreme = -1, extreme, p
        else:
            if p < extreme:
                extreme = p
            elif p >= extreme * (1.0 + threshold):
                leg, last_pivot, extreme = 1, extreme, p
        if leg:
            pivot[t] = last_pivot
            direction[t] = float(leg)
    return np.asarray(pivot), np.asarray(direction)
