"""Small statistics helpers shared by ``ktrdr compare`` and ``benchmarks/``.

Kept free of numpy and torch so that the CLI stays cheap to import. The
percentile is the core's (linear interpolation, the same one the ledger's
interval summaries use), so a number here and a number in ``ktrdr runs`` mean
the same thing.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

from ktrdr_core.report import percentile

__all__ = [
    "interleaved_order",
    "interval_stats",
    "median_or_none",
    "paired_ratios",
    "percentile",
    "percentiles",
    "ratio",
    "share_within",
]


def median_or_none(values: Sequence[float]) -> float | None:
    """The median, or ``None`` for no values."""
    return float(statistics.median(values)) if values else None


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (``None`` each for no values)."""
    return {f"p{point:g}": percentile(values, point) for point in points}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] / b[i]`` for each pair (the runs of one interleaved round), skipping zero ``b``.

    The median of paired ratios is robust to drift in machine load: both runs
    of a round see about the same load, so the drift cancels in their ratio.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_ratios needs two sequences of one length, got {len(a)} and {len(b)}")
    return [x / y for x, y in zip(a, b, strict=True) if y]


def share_within(values: Sequence[float], low: float, high: float) -> float | None:
    """The fraction of ``values`` in ``[low, high]`` (``None`` for no values)."""
    if not values:
        return None
    return sum(low <= v <= high for v in values) / len(values)


def interval_stats(
    intervals: Sequence[float], *, target: float = 0.3, band: float = 0.15, ceiling: float = 1.0
) -> dict[str, Any]:
    """Progress intervals summarised against the unified mode's target (docs/modes.md).

    ``target`` ± ``band`` (a fraction: 0.15 is ±15 %) is the window the median
    should fall in; ``ceiling`` the interval none should exceed (1 s).
    """
    values = list(intervals)
    median = median_or_none(values)
    low, high = target * (1 - band), target * (1 + band)
    return {
        "count": len(values),
        **percentiles(values, (50, 95, 99)),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "share_in_target_band": share_within(values, low, high),
        "over_ceiling": sum(v > ceiling for v in values),
        "median_in_band": None if median is None else low <= median <= high,
        "target": target,
        "band": [low, high],
        "ceiling": ceiling,
    }


def interleaved_order(names: Sequence[str], rounds: int, *, seed: int | None = None) -> list[list[str]]:
    """The run order for ``rounds`` rounds of A/B(/C...) measurements.

    Each round runs every name once. Without a seed the order alternates
    (ABBA for two names: ``[A, B], [B, A], [A, B], ...``), so that a slow drift
    in machine load, or the cost of running second, falls on each name
    equally often; with a seed each round is an independent shuffle.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be at least 0, got {rounds}")
    if len(set(names)) != len(names):
        raise ValueError(f"names must be distinct, got {list(names)}")
    base = list(names)
    if seed is not None:
        rng = random.Random(seed)
        out = []
        for _ in range(rounds):
            order = base[:]
            rng.shuffle(order)
            out.append(order)
        return out
    return [base[:] if index % 2 == 0 else base[::-1] for index in range(rounds)]
