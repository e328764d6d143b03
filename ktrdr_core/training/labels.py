"""Labels: BUY / HOLD / SELL from the move that comes next (zigzag or triple barrier).

Label encoding (used everywhere: model outputs, metrics, saved ``features.json``):

    BUY = 0, HOLD = 1, SELL = 2

**Zigzag.** For the bar at ``t`` with close ``p``, look at the closes of the
next ``lookahead`` bars (``t + 1 .. t + lookahead``):

- BUY if the price reaches ``p * (1 + threshold)`` before it reaches
  ``p * (1 - threshold)``;
- SELL if it reaches ``p * (1 - threshold)`` first;
- HOLD if it reaches neither within the ``lookahead`` bars.

A bar near the end whose look-ahead window is incomplete and that has not
reached either level yet gets no label (:data:`UNKNOWN`, dropped): we cannot
tell HOLD from a move still to come.

**Triple barrier** (López de Prado, *Advances in Financial Machine Learning*,
ch. 3, with the vertical barrier as its own class). For the bar at ``t`` with
close ``p`` and volatility ``v_t`` (a fraction of the price, from bars up to
``t`` only):

- upper barrier ``p * (1 + pt * v_t)``, lower barrier ``p * (1 - sl * v_t)``,
  vertical (time) barrier at ``t + horizon``;
- BUY if a close in ``t + 1 .. t + horizon`` reaches the upper barrier before
  any reaches the lower one, SELL for the lower one first, HOLD when the time
  barrier comes first (neither touched).

``v_t`` by ``vol_method``: ``atr`` — Wilder's ATR over ``vol_span`` bars
divided by the close (barriers in ATRs); ``close`` — the exponentially
weighted standard deviation of close-to-close returns, span ``vol_span``
(López de Prado's daily volatility); ``fixed`` — 1, so ``pt`` and ``sl`` are
fractions of the price. The last ``horizon`` bars, and bars whose volatility is
still warming up, get no label: nothing looks past the time barrier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import talib
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "BUY",
    "HOLD",
    "LABEL_NAMES",
    "SELL",
    "UNKNOWN",
    "barrier_volatility",
    "label_distribution",
    "triple_barrier_labels",
    "zigzag_labels",
]

BUY = 0
HOLD = 1
SELL = 2
UNKNOWN = -1
LABEL_NAMES = ("BUY", "HOLD", "SELL")


def _first_touch_labels(close: Any, up: Any, down: Any, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """BUY where a later close within ``horizon`` bars reaches ``close * up`` before one
    reaches ``close * down``, SELL the other way round, else UNKNOWN; and where neither
    level was reached. ``horizon`` is checked here for both label kinds."""
    if horizon < 1:
        raise ValueError(f"the look-ahead must be at least 1 bar, got {horizon}")
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    labels = np.full(n, UNKNOWN, dtype=np.int64)
    if n < 2:
        return labels, np.zeros(n, dtype=bool)
    # Pad with NaN so that every bar has a full window; NaN never crosses a level.
    padded = np.concatenate((close[1:], np.full(horizon, np.nan)))
    future = sliding_window_view(padded, horizon)[:n]  # future[t, k] = close[t + 1 + k]
    with np.errstate(invalid="ignore"):
        hit_up = future >= (close * up)[:, None]
        hit_down = future <= (close * down)[:, None]
    never = horizon + 1
    first_up = np.where(hit_up.any(axis=1), hit_up.argmax(axis=1), never)
    first_down = np.where(hit_down.any(axis=1), hit_down.argmax(axis=1), never)
    labels[first_up < first_down] = BUY
    labels[first_down < first_up] = SELL
    return labels, (first_up == never) & (first_down == never)


def zigzag_labels(close: Any, threshold: float, lookahead: int) -> np.ndarray:
    """An int64 array of BUY/HOLD/SELL (or UNKNOWN), one per bar."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction between 0 and 1, got {threshold}")
    labels, neither = _first_touch_labels(close, 1.0 + threshold, 1.0 - threshold, lookahead)
    complete = np.arange(len(labels)) + lookahead <= len(labels) - 1
    labels[neither & complete] = HOLD
    return labels


def barrier_volatility(close: Any, high: Any, low: Any, method: str, span: int) -> np.ndarray:
    """``v_t`` of the triple barrier (a fraction of the price; NaN while warming up)."""
    close = np.asarray(close, dtype=np.float64)
    if method == "fixed":
        return np.ones_like(close)
    if method == "atr":
        return (
            talib.ATR(
                np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64), close, timeperiod=span
            )
            / close
        )
    if method == "close":
        returns = np.full_like(close, np.nan)
        returns[1:] = close[1:] / close[:-1] - 1.0
        mean = talib.EMA(returns, timeperiod=span)
        variance = talib.EMA(returns * returns, timeperiod=span) - mean * mean
        return np.sqrt(np.maximum(variance, 0.0))
    raise ValueError(f"vol_method must be atr, close or fixed, got {method!r}")


def triple_barrier_labels(
    close: Any,
    high: Any = None,
    low: Any = None,
    *,
    pt: float,
    sl: float,
    horizon: int,
    vol_method: str = "atr",
    vol_span: int = 50,
) -> np.ndarray:
    """An int64 array of BUY/HOLD/SELL (or UNKNOWN), one per bar (see the module docstring).

    ``high`` and ``low`` are needed only by ``vol_method="atr"``.
    """
    if not (pt > 0 and sl > 0):
        raise ValueError(f"pt and sl must be positive, got {pt} and {sl}")
    close = np.asarray(close, dtype=np.float64)
    volatility = barrier_volatility(close, high, low, vol_method, vol_span)
    labels, neither = _first_touch_labels(close, 1.0 + pt * volatility, 1.0 - sl * volatility, horizon)
    labels[neither] = HOLD  # the time barrier came first
    labels[~(np.isfinite(volatility) & (volatility > 0))] = UNKNOWN
    labels[max(len(labels) - horizon, 0) :] = UNKNOWN
    return labels


def label_distribution(labels: np.ndarray) -> dict[str, int]:
    """``{"BUY": n, "HOLD": n, "SELL": n}`` (unknown labels are not counted)."""
    counts = np.bincount(labels[labels >= 0], minlength=3)
    return {name: int(counts[i]) for i, name in enumerate(LABEL_NAMES)}
