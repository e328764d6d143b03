"""Zigzag labels: BUY / HOLD / SELL from the move that comes next.

Label encoding (used everywhere: model outputs, metrics, saved ``features.json``):

    BUY = 0, HOLD = 1, SELL = 2

For the bar at ``t`` with close ``p``, look at the closes of the next
``lookahead`` bars (``t + 1 .. t + lookahead``):

- BUY if the price reaches ``p * (1 + threshold)`` before it reaches
  ``p * (1 - threshold)``;
- SELL if it reaches ``p * (1 - threshold)`` first;
- HOLD if it reaches neither within the ``lookahead`` bars.

A bar near the end whose look-ahead window is incomplete and that has not
reached either level yet gets no label (:data:`UNKNOWN`, dropped): we cannot
tell HOLD from a move still to come.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["BUY", "HOLD", "LABEL_NAMES", "SELL", "UNKNOWN", "label_distribution",
           "zigzag_labels"]

BUY = 0
HOLD = 1
SELL = 2
UNKNOWN = -1
LABEL_NAMES = ("BUY", "HOLD", "SELL")


def zigzag_labels(close: Any, threshold: float, lookahead: int) -> np.ndarray:
    """An int64 array of BUY/HOLD/SELL (or UNKNOWN), one per bar."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction between 0 and 1, got {threshold}")
    if lookahead < 1:
        raise ValueError(f"lookahead must be at least 1, got {lookahead}")
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    labels = np.full(n, UNKNOWN, dtype=np.int64)
    if n < 2:
        return labels
    # Pad with NaN so that every bar has a full window; NaN never crosses a level.
    padded = np.concatenate((close[1:], np.full(lookahead, np.nan)))
    future = sliding_window_view(padded, lookahead)[:n]  # future[t, k] = close[t + 1 + k]
    with np.errstate(invalid="ignore"):
        up = future >= close[:, None] * (1.0 + threshold)
        down = future <= close[:, None] * (1.0 - threshold)
    never = lookahead + 1
    first_up = np.where(up.any(axis=1), up.argmax(axis=1), never)
    first_down = np.where(down.any(axis=1), down.argmax(axis=1), never)
    complete = np.arange(n) + lookahead <= n - 1
    labels[first_up < first_down] = BUY
    labels[first_down < first_up] = SELL
    labels[(first_up == never) & (first_down == never) & complete] = HOLD
    return labels


def label_distribution(labels: np.ndarray) -> dict[str, int]:
    """``{"BUY": n, "HOLD": n, "SELL": n}`` (unknown labels are not counted)."""
    counts = np.bincount(labels[labels >= 0], minlength=3)
    return {name: int(counts[i]) for i, name in enumerate(LABEL_NAMES)}
