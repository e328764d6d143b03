"""Technical indicators on numpy arrays.

Every function takes float arrays and returns an array of the same length, with
``NaN`` where the indicator is not yet defined (its warm-up). Window
indicators are vectorised; the recursive smoothers (EMA, Wilder) are a tight
loop, since each value depends on the previous one (about 1 ms per 10,000 bars).

Conventions (the usual TA-Lib ones):

- ``sma(x, n)``: defined from index ``n - 1``.
- ``ema(x, n)``: ``alpha = 2 / (n + 1)``, seeded with the SMA of the first ``n``
  valid values, so defined from index ``n - 1`` (after any leading NaNs).
- ``rsi(x, n)`` (Wilder): average gain/loss seeded with the plain mean of the
  first ``n`` changes, then ``avg = (avg * (n - 1) + value) / n``; defined from
  index ``n``. No losses gives 100, no change at all gives 50.
- ``macd``: ``ema(fast) - ema(slow)``, signal ``ema(macd, signal)``,
  histogram ``macd - signal``.
- ``bollinger_percent_b(x, n, k)``: ``(x - lower) / (upper - lower)`` with bands
  ``sma ± k * population std``; 0.5 when the band has no width.
- ``atr(high, low, close, n)``: Wilder average of the true range, which needs the
  previous close, so the first true range is at index 1 and ATR starts at index ``n``.
- ``roc(x, n)``: ``(x[t] / x[t - n] - 1) * 100`` (percent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "atr",
    "bollinger_percent_b",
    "compute_indicator",
    "ema",
    "macd",
    "roc",
    "rsi",
    "sma",
]

FloatArray = np.ndarray


def _as_float(x: Any) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _check_period(period: int) -> None:
    if int(period) != period or period < 1:
        raise ValueError(f"period must be a positive integer, got {period!r}")


def sma(x: Any, period: int) -> FloatArray:
    """Simple moving average over ``period`` values."""
    _check_period(period)
    x = _as_float(x)
    out = np.full(x.shape, np.nan)
    if len(x) >= period:
        out[period - 1:] = sliding_window_view(x, period).mean(axis=1)
    return out


def _recursive_smooth(x: FloatArray, period: int, alpha: float) -> FloatArray:
    """Exponential smoothing seeded with the SMA of the first ``period`` valid values."""
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) == 0:
        return out
    start = int(valid[0])
    if len(x) - start < period:
        return out
    if np.isnan(x[start:]).any():
        raise ValueError("input has NaNs after its first valid value")
    seed_end = start + period - 1
    value = float(x[start:seed_end + 1].mean())
    out[seed_end] = value
    keep = 1.0 - alpha
    values = x[seed_end + 1:].tolist()
    smoothed: list[float] = []
    append = smoothed.append
    for item in values:
        value = alpha * item + keep * value
        append(value)
    out[seed_end + 1:] = smoothed
    return out


def ema(x: Any, period: int) -> FloatArray:
    """Exponential moving average, ``alpha = 2 / (period + 1)``, SMA-seeded."""
    _check_period(period)
    return _recursive_smooth(_as_float(x), period, 2.0 / (period + 1))


def _wilder(x: FloatArray, period: int) -> FloatArray:
    return _recursive_smooth(x, period, 1.0 / period)


def rsi(x: Any, period: int = 14) -> FloatArray:
    """Wilder's relative strength index, 0..100."""
    _check_period(period)
    x = _as_float(x)
    out = np.full(x.shape, np.nan)
    if len(x) <= period:
        return out
    change = np.diff(x)
    gains = np.concatenate(([np.nan], np.clip(change, 0, None)))
    losses = np.concatenate(([np.nan], np.clip(-change, 0, None)))
    avg_gain = _wilder(gains, period)
    avg_loss = _wilder(losses, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    out = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, out)
    out = np.where((avg_loss == 0) & (avg_gain == 0), 50.0, out)
    out[np.isnan(avg_gain)] = np.nan
    return out


def macd(x: Any, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9
         ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(macd line, signal line, histogram)``."""
    if fast_period >= slow_period:
        raise ValueError("fast_period must be less than slow_period")
    x = _as_float(x)
    line = ema(x, fast_period) - ema(x, slow_period)
    signal = ema(line, signal_period)
    return line, signal, line - signal


def bollinger_percent_b(x: Any, period: int = 20, num_std: float = 2.0) -> FloatArray:
    """Where ``x`` sits in its Bollinger band: 0 at the lower band, 1 at the upper."""
    _check_period(period)
    x = _as_float(x)
    out = np.full(x.shape, np.nan)
    if len(x) < period:
        return out
    windows = sliding_window_view(x, period)
    mid = windows.mean(axis=1)
    std = windows.std(axis=1)
    lower = mid - num_std * std
    width = 2.0 * num_std * std
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(width > 0, (x[period - 1:] - lower) / width, 0.5)
    out[period - 1:] = pct
    return out


def true_range(high: Any, low: Any, close: Any) -> FloatArray:
    """``max(high - low, |high - prev close|, |low - prev close|)``; NaN at index 0."""
    high, low, close = _as_float(high), _as_float(low), _as_float(close)
    out = np.full(high.shape, np.nan)
    if len(high) > 1:
        prev = close[:-1]
        out[1:] = np.maximum.reduce([high[1:] - low[1:], np.abs(high[1:] - prev),
                                     np.abs(low[1:] - prev)])
    return out


def atr(high: Any, low: Any, close: Any, period: int = 14) -> FloatArray:
    """Wilder's average true range."""
    _check_period(period)
    return _wilder(true_range(high, low, close), period)


def roc(x: Any, period: int = 10) -> FloatArray:
    """Rate of change over ``period`` bars, in percent."""
    _check_period(period)
    x = _as_float(x)
    out = np.full(x.shape, np.nan)
    if len(x) > period:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[period:] = (x[period:] / x[:-period] - 1.0) * 100.0
    return out


def _relative(value: FloatArray, price: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return value / price * 100.0


def compute_indicator(name: str, period: int | None, params: Mapping[str, Any],
                      source: str, ohlcv: Mapping[str, FloatArray]) -> FloatArray:
    """The one series a strategy indicator contributes (see ``docs/engine.md``).

    ``relative: true`` makes a price-scaled indicator scale-free, so one set of
    fuzzy sets fits every symbol: SMA/EMA become the percent distance of the
    price from the average, MACD and ATR become percent of the price.
    """
    price = _as_float(ohlcv[source])
    relative = bool(params.get("relative", False))
    if name == "rsi":
        return rsi(price, period or 14)
    if name in ("sma", "ema"):
        average = (sma if name == "sma" else ema)(price, period or 20)
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (price / average - 1.0) * 100.0
        return average
    if name == "macd":
        line, signal, hist = macd(price, int(params.get("fast_period", 12)),
                                  int(params.get("slow_period", 26)),
                                  int(params.get("signal_period", 9)))
        chosen = {"line": line, "signal": signal, "histogram": hist}[params.get("output",
                                                                                "histogram")]
        return _relative(chosen, price) if relative else chosen
    if name == "bollinger_percent_b":
        return bollinger_percent_b(price, period or 20, float(params.get("num_std", 2.0)))
    if name == "atr":
        close = _as_float(ohlcv["close"])
        value = atr(ohlcv["high"], ohlcv["low"], close, period or 14)
        return _relative(value, close) if relative else value
    if name == "roc":
        return roc(price, period or 10)
    raise ValueError(f"unknown indicator {name!r}")
