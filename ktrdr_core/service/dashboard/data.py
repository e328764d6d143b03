"""What the dashboard shows, read from the same state the CLI reads.

Each function takes the rollout store and the run ledger explicitly and
returns plain JSON-ready data; the gate itself comes from
:mod:`ktrdr_core.rollout.current` (the judgement of ``ktrdr rollout gate``),
and the plots aggregate the same runs the gate judges (finished, not shadow,
bad-input failures left out) into time buckets, so the lines and the verdict
above them tell one story.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ktrdr_core.ledger.store import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    NOT_COUNTED_KINDS,
    ComparisonRecord,
    RunLedger,
    RunRecord,
)
from ktrdr_core.ledger.times import iso_utc
from ktrdr_core.report import percentile
from ktrdr_core.rollout.gates import StageGate
from ktrdr_core.rollout.store import RolloutStore

SERIES_BUCKETS = 24
"""Points per line: a 7-day window gives one every 7 hours."""
REPORT_JSON = "report.json"
MAX_REPORT_BYTES = 20 * 1024 * 1024
"""A comparison report larger than this is not read (its curves are a few kilobytes)."""
CURVE_KEYS = ("val_loss", "train_loss", "val_accuracy", "train_accuracy")


def audit_history(store: RolloutStore, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` rollout changes, newest first."""
    return [entry.to_dict() for entry in reversed(store.history()[-limit:])]


def recent_runs(ledger: RunLedger, limit: int) -> list[dict[str, Any]]:
    """The newest runs of the ledger, any mode and status."""
    return [run.to_dict() for run in ledger.runs(limit=limit)]


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _bucket_metrics(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """One point of every plotted line: the same quantities the gate judges, for these runs."""
    errors = sum(1 for r in runs if r.status in FAILED_STATUSES)
    durations = [r.duration_seconds for r in runs if r.status == "success" and r.duration_seconds is not None]
    latencies = [
        r.cancellation_latency_seconds * 1000
        for r in runs
        if r.status == "cancelled" and r.cancellation_latency_seconds is not None
    ]
    intervals = [r.interval_p50 for r in runs if r.interval_p50 is not None]
    return {
        "runs": len(runs),
        "errors": errors,
        "error_rate_pct": round(errors / len(runs) * 100, 4) if runs else None,
        "duration_s": _median(durations),
        "cancel_p95_ms": percentile(latencies, 95),
        "progress_interval_s": _median(intervals),
    }


def window_series(
    ledger: RunLedger,
    gate: StageGate,
    *,
    now: float | None = None,
    window_seconds: float | None = None,
    buckets: int = SERIES_BUCKETS,
) -> dict[str, Any]:
    """Per mode, the gate's quantities over the window in ``buckets`` equal time slices.

    A slice with no run of a mode has ``runs: 0`` and ``null`` values (a gap
    in the line, not a zero). The thresholds are the gate's, for the plots'
    reference lines.
    """
    until = time.time() if now is None else now
    span = gate.window_seconds if window_seconds is None else window_seconds
    since = until - span
    width = span / buckets
    runs = ledger.runs(
        status=FINISHED_STATUSES,
        since=since,
        until=until,
        exclude_error_kind=NOT_COUNTED_KINDS,
        shadow=False,
        newest_first=False,
    )
    by_mode: dict[str, list[list[RunRecord]]] = {}
    for run in runs:
        index = min(buckets - 1, max(0, math.floor((run.started_epoch - since) / width)))
        by_mode.setdefault(run.mode, [[] for _ in range(buckets)])[index].append(run)
    return {
        "since": iso_utc(since),
        "until": iso_utc(until),
        "bucket_seconds": width,
        "starts": [iso_utc(since + i * width) for i in range(buckets)],
        "modes": {mode: [_bucket_metrics(slot) for slot in slots] for mode, slots in sorted(by_mode.items())},
        "totals": {
            mode: _bucket_metrics([r for slot in slots for r in slot])
            for mode, slots in sorted(by_mode.items())
        },
        "thresholds": {
            "error_rate_pct": gate.error_rate_pct,
            "cancel_p95_ms": gate.cancel_p95_ms,
            "progress_interval_s": list(gate.progress_interval_s) if gate.progress_interval_s else None,
            "duration_ratio": gate.duration_ratio,
        },
    }


def _report_of(record: ComparisonRecord) -> dict[str, Any] | None:
    """The comparison's ``report.json``, if it is still there and sane."""
    if not record.report_path:
        return None
    recorded = Path(record.report_path)  # the report's folder, or one of its files (report.md)
    path = (recorded if recorded.suffix == "" else recorded.parent) / REPORT_JSON
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == "ktrdr-compare" else None


def _curves(side: Any) -> dict[str, list[float]]:
    history = side.get("training_metrics", {}).get("history") if isinstance(side, dict) else None
    if not isinstance(history, dict):
        return {}
    out = {}
    for key in CURVE_KEYS:
        values = history.get(key)
        if isinstance(values, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            out[key] = [float(v) for v in values]
    return out


def comparison_summary(record: ComparisonRecord) -> dict[str, Any]:
    """A comparison as the dashboard lists it: the outcome and, from its report, the curves."""
    report = _report_of(record)
    curves = None
    if report is not None:
        curves = {
            role: {"mode": report.get(role, {}).get("mode"), **_curves(report.get(role))}
            for role in ("control", "candidate")
        }
    return {**record.to_dict(), "report_path": None, "has_report": report is not None, "curves": curves}


def recent_comparisons(ledger: RunLedger, limit: int) -> list[dict[str, Any]]:
    """The newest comparisons, each with its curves where its report is readable."""
    return [comparison_summary(record) for record in ledger.comparisons(limit=limit)]
