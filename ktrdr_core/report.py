"""What the manager measured about one run, handed to lifecycle observers.

Kept apart from :class:`~ktrdr_core.result.TrainingResult` because these are
facts about *running* the mode (how long, how often it reported, how fast it
stopped), not about the model — the things the rollout's quality gates judge.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ktrdr_core.result import Status


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (0–100) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def _float_tuple(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@attrs.frozen(kw_only=True)
class RunReport:
    """Timings of one run as the manager saw them."""

    request_id: str
    mode: str
    status: Status
    started_at: float
    """Wall-clock start, seconds since the epoch."""
    duration_seconds: float
    progress_updates: int = 0
    progress_intervals: tuple[float, ...] = attrs.field(default=(), converter=_float_tuple)
    """Seconds between consecutive updates, as delivered to the sinks."""
    cancellation_latency_seconds: float | None = None
    """From the cancel request to the mode returning; ``None`` when not cancelled."""
    error: str | None = None
    resources: Mapping[str, Any] | None = None
    """CPU seconds and peak memory of the run (``ktrdr_core.resources.ResourceUsage.to_dict``)."""
    progress_max_deviation: float | None = None
    """Largest |reported - actual| fraction of work over the delivered updates
    (``ktrdr_core.progress_accuracy``); ``None`` where the engine ran elsewhere."""

    def interval_summary(self) -> dict[str, float | None]:
        """Median, p95, min and max of the progress intervals."""
        values = self.progress_intervals
        return {
            "p50": statistics.median(values) if values else None,
            "p95": percentile(values, 95),
            "min": min(values) if values else None,
            "max": max(values) if values else None,
        }

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["progress_intervals"] = list(self.progress_intervals)
        data["progress_interval_summary"] = self.interval_summary()
        return data
