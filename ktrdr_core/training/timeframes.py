"""Timeframes: their length, the base one, and aligning a higher timeframe on the base bars.

Bar timestamps are bar *open* times. A bar of timeframe ``tf`` opened at ``T``
is closed at ``T + len(tf)``. For the base bar opened at ``t`` (closed at
``t + len(base)``), a higher timeframe contributes its last bar closed by
then: the one with the largest ``T`` such that ``T + len(tf) <= t + len(base)``.
So a daily bar is seen only from the last hourly bar of its day on, never
while it is still forming: no look-ahead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ktrdr_core.errors import BadInputError

__all__ = ["align_closed", "base_timeframe", "timeframe_seconds"]

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TF = re.compile(r"([0-9]+)([A-Za-z]+)")


def timeframe_seconds(timeframe: str) -> int:
    """``"4h"`` -> 14400; months and unknown units are refused (their length varies)."""
    match = _TF.fullmatch(timeframe)
    unit = match.group(2) if match else ""
    if unit not in _UNITS and unit.lower() in ("h", "d", "w", "s", "min"):
        unit = unit.lower()  # 1H, 1D, 1W as some tools write them; 1M stays a month
    if match is None or unit not in _UNITS or int(match.group(1)) < 1:
        raise BadInputError(
            f"timeframe {timeframe!r} has no fixed length (use s, m, h, d or w, "
            "such as 15m, 4h, 1d) so it cannot be aligned with other timeframes"
        )
    return int(match.group(1)) * _UNITS[unit]


def base_timeframe(timeframes: Sequence[str], preferred: str | None) -> str:
    """``preferred`` when the run loads it, else the finest timeframe (one alone: itself)."""
    if len(timeframes) == 1:
        return timeframes[0]
    if preferred in timeframes:
        return str(preferred)
    return min(timeframes, key=timeframe_seconds)


def align_closed(base_times: np.ndarray, base_tf: str, times: np.ndarray, tf: str) -> np.ndarray:
    """Per base bar, the index of the last ``tf`` bar closed by its close; -1 where none is."""
    base_close = np.asarray(base_times, dtype="datetime64[s]").astype(np.int64) + timeframe_seconds(base_tf)
    closes = np.asarray(times, dtype="datetime64[s]").astype(np.int64) + timeframe_seconds(tf)
    return np.searchsorted(closes, base_close, side="right") - 1
