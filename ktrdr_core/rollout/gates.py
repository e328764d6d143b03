"""The rollout's quality gates (docs/runbook.md), judged from the run ledger with confidence bounds.

A gate belongs to the stage you are trying to *leave*: the gate of ``canary``
holds the criteria for canary → expanded (phase 2.1 → 2.2 of
the rollout). The mapping:

=========  ===================  ======================================
stage      leads to             phase step
=========  ===================  ======================================
off        canary               Phase 1 → Phase 2 (side-by-side, errors)
canary     expanded             2.1 → 2.2 (error < 1 %, within 10 %, 1 week)
expanded   full                 2.2 → 2.3 (error < 0.5 %, equivalent, cancel < 100 ms, 2 weeks)
full       Phase 3 (cleanup)    2.3 → Phase 3 (error < 0.1 %, meets or exceeds, 1 week)
=========  ===================  ======================================

Every criterion prints its estimate and a one-sided 95 % interval
(:mod:`ktrdr_core.rollout.confidence`) and says PASS only when the interval
clears the threshold, FAIL when it is clearly past it, and otherwise
INSUFFICIENT DATA with about how many more runs would decide. The gate is
FAIL if any criterion fails, else INSUFFICIENT DATA if any lacks data, else
PASS. Shadow runs (background candidate runs on users' requests) are never
counted as user traffic; their pairs feed the comparison and model-accuracy
criteria.

Thresholds live in the rollout file under ``"gates"``: a key at the top
applies to every stage, a key under a stage name to that stage only::

    "gates": {"window": "7d", "min_runs": 20, "canary": {"error_rate_pct": 2.0}}

A criterion set to ``null`` (``duration_ratio``, ``cancel_p95_ms``,
``progress_interval_s``, ``time_in_stage``, ``cpu_ratio``, ``memory_ratio``,
``model_accuracy_pct``, ``progress_accuracy_pct``) or ``false``
(``comparison``) is not judged.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import attrs

from ktrdr_core.errors import BadInputError, ConfigurationError
from ktrdr_core.ledger.store import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    NOT_COUNTED_KINDS,
    ComparisonRecord,
    RunLedger,
    RunRecord,
)
from ktrdr_core.ledger.times import iso_utc, parse_duration
from ktrdr_core.report import percentile
from ktrdr_core.rollout import confidence
from ktrdr_core.rollout.confidence import Judgement
from ktrdr_core.rollout.settings import STAGES, RolloutSettings

PASS = "PASS"
FAIL = "FAIL"
INSUFFICIENT = "INSUFFICIENT DATA"

EXIT_CODES = {PASS: 0, FAIL: 1, INSUFFICIENT: 3}
"""``ktrdr rollout gate`` / ``advance`` exit codes: 0 PASS, 1 FAIL, 3 INSUFFICIENT DATA."""

NEXT_STAGE: dict[str, str | None] = dict(zip(STAGES, [*list(STAGES)[1:], None], strict=True))
"""Each stage's successor, in :data:`STAGES` order (``full`` has none)."""
GATE_TITLES = {
    "off": "Phase 1 -> Phase 2 (off -> canary)",
    "canary": "Stage 2.1 -> 2.2 (canary -> expanded)",
    "expanded": "Stage 2.2 -> 2.3 (expanded -> full)",
    "full": "Stage 2.3 -> Phase 3 (full -> remove the control mode)",
}
BAD_INPUT_KIND = "bad_input"
CONTROL_BASELINE_RUNS = 100
"""With too few control runs in the window, the duration baseline is this many latest ones."""
_VERDICTS = {confidence.PASS: PASS, confidence.FAIL: FAIL, confidence.UNDECIDED: INSUFFICIENT}


@attrs.frozen(kw_only=True)
class StageGate:
    """The thresholds of one stage's gate."""

    window: str = "7d"
    min_runs: int = 20
    """Finished candidate runs the window must hold before any rate is judged."""
    min_duration_runs: int = 5
    """Successful runs each side needs before durations and resources are compared."""
    min_cancelled_runs: int = 0
    """Cancelled candidate runs required; 0 judges cancellation only where cancelled runs exist."""
    error_rate_pct: float = 1.0
    """The candidate's error rate must be below this (percent), by its upper 95 % bound."""
    duration_ratio: float | None = 1.10
    """Candidate median duration / control median duration must be at most this (upper bound)."""
    cancel_p95_ms: float | None = 100.0
    """The p95 cancellation latency must be strictly below this."""
    progress_interval_s: tuple[float, float] | None = (0.1, 1.0)
    """The median progress interval must lie within these bounds (inclusive)."""
    comparison: bool = True
    """Whether side-by-side comparisons must show the two equivalent."""
    time_in_stage: str | None = None
    """How long the stage must have lasted (from the audit log's last rollout change)."""
    cpu_ratio: float | None = 1.30
    """Candidate / control median CPU seconds per run must be at most this."""
    memory_ratio: float | None = 1.30
    """Candidate / control median peak memory per run must be at most this."""
    model_accuracy_pct: float | None = 1.0
    """On shadow pairs: the candidate's val_loss rise and val_accuracy drop, at most this (percent)."""
    progress_accuracy_pct: float | None = 1.0
    """The median of the runs' largest |reported - actual progress| must be at most this (points)."""
    min_pairs: int = 20
    """Shadow pairs the window must hold before they are judged."""
    comparison_different_pct: float = 1.0
    """On shadow pairs: the share of pairs that are not equivalent must be below this (percent)."""

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window, what="gates window")

    @property
    def time_in_stage_seconds(self) -> float | None:
        return (
            None
            if self.time_in_stage is None
            else parse_duration(self.time_in_stage, what="gates time_in_stage")
        )


DEFAULT_GATES: dict[str, StageGate] = {
    # Phase 1: only forced runs (compare, manual tests) reach the candidate, so
    # "manual testing succeeds" is judged at 5 %: 0 errors in about 53 runs decide it.
    "off": StageGate(min_runs=5, error_rate_pct=5.0, duration_ratio=1.10),
    # The stage durations: canary 1 week, expanded 2 weeks, full 1 week.
    "canary": StageGate(error_rate_pct=1.0, duration_ratio=1.10, time_in_stage="7d"),
    # "Performance equivalent to old": equal within the run-to-run noise of wall-clock medians.
    "expanded": StageGate(error_rate_pct=0.5, duration_ratio=1.05, time_in_stage="14d"),
    # "Meets or exceeds legacy": no slower than 2 %, the noise we accept on a median.
    "full": StageGate(error_rate_pct=0.1, duration_ratio=1.02, time_in_stage="7d"),
}
STAGE_KEYS = tuple(field.name for field in attrs.fields(StageGate))
_NULLABLE_POSITIVE = (
    "duration_ratio",
    "cancel_p95_ms",
    "cpu_ratio",
    "memory_ratio",
    "model_accuracy_pct",
    "progress_accuracy_pct",
)


def _number(
    value: Any,
    where: str,
    *,
    low: float,
    high: float | None = None,
    low_inclusive: bool = True,
    integer: bool = False,
) -> Any:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value >= low if low_inclusive else value > low
        ok = ok and (high is None or value <= high)
    if not ok:
        kind = "a whole number" if integer else "a number"
        bound = f"{'at least' if low_inclusive else 'more than'} {low:g}"
        if high is not None:
            bound += f" and at most {high:g}"
        raise ConfigurationError(f"{where} must be {kind} {bound}, got {value!r}")
    return int(value) if integer else float(value)


def _duration_value(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{at} must be a duration such as '7d', got {value!r}")
    try:
        parse_duration(value, what=at)
    except BadInputError as exc:
        raise ConfigurationError(str(exc)) from None
    return value


def _parse_stage_values(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        at = f"{where}.{key}'"
        if key == "window":
            values[key] = _duration_value(value, at)
        elif key == "time_in_stage":
            values[key] = None if value is None else _duration_value(value, at)
        elif key in ("min_runs", "min_duration_runs", "min_pairs"):
            values[key] = _number(value, at, low=1, integer=True)
        elif key == "min_cancelled_runs":
            values[key] = _number(value, at, low=0, integer=True)
        elif key in ("error_rate_pct", "comparison_different_pct"):
            values[key] = _number(value, at, low=0, high=100, low_inclusive=False)
        elif key in _NULLABLE_POSITIVE:
            values[key] = None if value is None else _number(value, at, low=0, low_inclusive=False)
        elif key == "progress_interval_s":
            if value is None:
                values[key] = None
                continue
            if not (isinstance(value, list) and len(value) == 2):
                raise ConfigurationError(f"{at} must be [low, high] in seconds, or null, got {value!r}")
            low = _number(value[0], at, low=0)
            high = _number(value[1], at, low=0)
            if low > high:
                raise ConfigurationError(f"{at} must be [low, high] with low <= high, got {value!r}")
            values[key] = (low, high)
        elif key == "comparison":
            if not isinstance(value, bool):
                raise ConfigurationError(f"{at} must be true or false, got {value!r}")
            values[key] = value
        else:
            known = ", ".join((*STAGE_KEYS, *STAGES))
            raise ConfigurationError(f"{at} is not a gate setting (known: {known})")
    return values


@attrs.frozen
class GateConfig:
    """Every stage's gate, from the defaults and the rollout file's ``"gates"``."""

    stages: Mapping[str, StageGate] = attrs.field(factory=lambda: dict(DEFAULT_GATES))

    def __getitem__(self, stage: str) -> StageGate:
        return self.stages[stage]

    @classmethod
    def from_mapping(cls, data: Any, *, source: str) -> GateConfig:
        """Parse the ``"gates"`` value of the rollout file ``source`` (``None``: defaults)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: 'gates' must be a JSON object")
        shared = {key: value for key, value in data.items() if key not in STAGES}
        common = _parse_stage_values(shared, f"{source}: 'gates")
        stages = {}
        for name, default in DEFAULT_GATES.items():
            specific = data.get(name, {})
            if not isinstance(specific, Mapping):
                raise ConfigurationError(f"{source}: 'gates.{name}' must be a JSON object")
            own = _parse_stage_values(specific, f"{source}: 'gates.{name}")
            stages[name] = attrs.evolve(default, **{**common, **own})
        return cls(stages)


@attrs.frozen(kw_only=True)
class Criterion:
    """One line of a gate: what is judged, against what, the estimate and interval, the verdict."""

    name: str
    threshold: str
    measured: float | int | str | None
    """The estimate (a rate in %, a ratio, a count, a time...)."""
    verdict: str
    detail: str = ""
    unit: str = ""
    """The unit of ``measured`` and the interval (``%``, ``ms``, ``s``, ``d``, or empty)."""
    low: float | None = None
    high: float | None = None
    """The one-sided 95 % bounds of the estimate (both ``None`` for a plain measurement)."""
    runs_needed: int | None = None
    """For INSUFFICIENT DATA: about how many more runs (or pairs) would decide."""

    def measured_text(self) -> str:
        if self.measured is None:
            return "-"
        value = _fmt(self.measured)
        if self.low is not None and self.high is not None:
            value += f" [{_fmt(self.low)}, {_fmt(self.high)}]"
        return f"{value} {self.unit}" if self.unit else value

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["interval"] = [self.low, self.high] if self.low is not None else None
        return data


def _fmt(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@attrs.frozen(kw_only=True)
class GateReport:
    """The verdict of one stage's gate over a window of the ledger."""

    stage: str
    next_stage: str | None
    title: str
    control: str
    candidate: str
    window: str
    since: float
    until: float
    criteria: tuple[Criterion, ...]

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.criteria}
        if FAIL in verdicts:
            return FAIL
        if INSUFFICIENT in verdicts:
            return INSUFFICIENT
        return PASS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def summary(self) -> str:
        """The verdict and the criteria that stopped it passing, in one line."""
        blocking = [f"{c.name} {c.verdict}" for c in self.criteria if c.verdict != PASS]
        return self.verdict + (f" ({'; '.join(blocking)})" if blocking else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "next_stage": self.next_stage,
            "title": self.title,
            "control": self.control,
            "candidate": self.candidate,
            "window": self.window,
            "since": iso_utc(self.since),
            "until": iso_utc(self.until),
            "verdict": self.verdict,
            "confidence": confidence.CONFIDENCE,
            "criteria": [c.to_dict() for c in self.criteria],
        }


def _fmt_pct(value: float) -> str:
    return f"{value:.3g} %"


def exceeds(errors: int, runs: int, threshold_pct: float) -> bool:
    """``errors / runs > threshold_pct %``, exactly (no float rounding at the boundary)."""
    return Fraction(errors, runs) > Fraction(str(threshold_pct)) / 100


def below(errors: int, runs: int, threshold_pct: float) -> bool:
    """``errors / runs < threshold_pct %``, exactly."""
    return Fraction(errors, runs) < Fraction(str(threshold_pct)) / 100


def _more(judgement: Judgement, what: str = "runs") -> str:
    if judgement.verdict != confidence.UNDECIDED:
        return ""
    if judgement.more_needed is None:
        return f"; more {what} at this estimate never decide (it sits on the threshold)"
    return f"; about {judgement.more_needed} more {what} at this estimate would decide"


def _from_judgement(
    name: str,
    threshold: str,
    judgement: Judgement,
    detail: str,
    *,
    scale: float = 1.0,
    unit: str = "",
    what: str = "runs",
) -> Criterion:
    return Criterion(
        name=name,
        threshold=threshold,
        unit=unit,
        measured=round(judgement.estimate * scale, 6),
        low=round(judgement.low * scale, 6),
        high=round(judgement.high * scale, 6),
        verdict=_VERDICTS[judgement.verdict],
        runs_needed=judgement.more_needed if judgement.verdict == confidence.UNDECIDED else None,
        detail=detail + _more(judgement, what),
    )


def _runs_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion:
    n = len(finished)
    return Criterion(
        name="candidate runs",
        threshold=f">= {gate.min_runs} finished runs in the window",
        measured=n,
        verdict=PASS if n >= gate.min_runs else INSUFFICIENT,
        runs_needed=None if n >= gate.min_runs else gate.min_runs - n,
        detail="user traffic only (shadow runs not counted)"
        + ("" if n >= gate.min_runs else f"; {gate.min_runs - n} more needed"),
    )


def _error_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion:
    n = len(finished)
    errors = sum(1 for r in finished if r.status in FAILED_STATUSES)  # interrupted runs count too
    name = "candidate error rate"
    threshold = f"< {_fmt_pct(gate.error_rate_pct)} (upper 95 % bound, Wilson)"
    detail = f"{errors} errors in {n} runs (bad-input failures and runs that never started not counted)"
    if n < gate.min_runs:
        judgement = confidence.judge_rate(errors, n, gate.error_rate_pct / 100)
        return Criterion(
            name=name,
            threshold=threshold,
            unit="%",
            measured=round(errors / n * 100, 6) if n else None,
            low=round(judgement.low * 100, 6) if n else None,
            high=round(judgement.high * 100, 6) if n else None,
            verdict=INSUFFICIENT,
            runs_needed=max(gate.min_runs - n, judgement.more_needed or 0),
            detail=f"{detail}; at least {gate.min_runs} runs needed",
        )
    judgement = confidence.judge_rate(errors, n, gate.error_rate_pct / 100)
    return _from_judgement(name, threshold, judgement, detail, scale=100, unit="%")


def _ratio_criterion(
    name: str,
    limit: float | None,
    candidate: Sequence[float],
    control: Sequence[float],
    gate: StageGate,
    *,
    unit_word: str,
    note: str = "",
    missing: str = "",
) -> Criterion | None:
    if limit is None:
        return None
    threshold = f"<= {limit:.3g} (upper 95 % bound, bootstrap)"
    enough = min(len(candidate), len(control)) >= gate.min_duration_runs
    if not enough or not statistics.median(control):
        return Criterion(
            name=name,
            threshold=threshold,
            measured=None,
            verdict=INSUFFICIENT,
            runs_needed=gate.min_duration_runs - min(len(candidate), len(control)) if not enough else None,
            detail=f"{len(candidate)} candidate and {len(control)} control successful runs measured; "
            f"{gate.min_duration_runs} of each needed{missing}",
        )
    judgement = confidence.judge_median_ratio(candidate, control, limit)
    detail = (
        f"medians: candidate {statistics.median(candidate):.4g} {unit_word} over {len(candidate)} "
        f"runs, control {statistics.median(control):.4g} {unit_word} over {len(control)} runs{note}"
    )
    return _from_judgement(name, threshold, judgement, detail, what="runs each side")


def _cancellation_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion | None:
    if gate.cancel_p95_ms is None:
        return None
    latencies = [
        r.cancellation_latency_seconds * 1000
        for r in finished
        if r.status == "cancelled" and r.cancellation_latency_seconds is not None
    ]
    threshold = f"< {gate.cancel_p95_ms:g} ms"
    name = "cancellation latency p95"
    if not latencies or len(latencies) < gate.min_cancelled_runs:
        if gate.min_cancelled_runs == 0:
            return Criterion(
                name=name,
                threshold=threshold,
                measured=None,
                verdict=PASS,
                detail="no cancelled candidate runs in the window; none required",
            )
        return Criterion(
            name=name,
            threshold=threshold,
            measured=None,
            verdict=INSUFFICIENT,
            runs_needed=gate.min_cancelled_runs - len(latencies),
            detail=f"{len(latencies)} cancelled runs; {gate.min_cancelled_runs} needed",
        )
    p95 = percentile(latencies, 95)
    assert p95 is not None
    return Criterion(
        name=name,
        threshold=threshold,
        measured=round(p95, 3),
        unit="ms",
        verdict=PASS if p95 < gate.cancel_p95_ms else FAIL,
        detail=f"over {len(latencies)} cancelled runs",
    )


def _progress_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion | None:
    if gate.progress_interval_s is None:
        return None
    low, high = gate.progress_interval_s
    medians = [r.interval_p50 for r in finished if r.interval_p50 is not None]
    threshold = f"{low:g} s to {high:g} s"
    name = "median progress interval"
    if not medians:
        return Criterion(
            name=name,
            threshold=threshold,
            measured=None,
            verdict=INSUFFICIENT,
            detail="no candidate run in the window reported two progress updates",
        )
    value = statistics.median(medians)
    return Criterion(
        name=name,
        threshold=threshold,
        measured=round(value, 4),
        unit="s",
        verdict=PASS if low <= value <= high else FAIL,
        detail=f"median of the per-run medians of {len(medians)} runs",
    )


def _progress_accuracy_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion | None:
    if gate.progress_accuracy_pct is None:
        return None
    limit = gate.progress_accuracy_pct
    name = "progress accuracy (largest |reported - actual| per run, median)"
    threshold = f"<= {limit:g} points (upper 95 % bound, bootstrap)"
    deviations = [
        r.progress_max_deviation * 100
        for r in finished
        if r.status == "success" and r.progress_max_deviation is not None
    ]
    if len(deviations) < gate.min_duration_runs:
        return Criterion(
            name=name,
            threshold=threshold,
            measured=None,
            verdict=INSUFFICIENT,
            runs_needed=gate.min_duration_runs - len(deviations),
            detail=f"{len(deviations)} successful candidate runs measured it; "
            f"{gate.min_duration_runs} needed (runs on another machine, e.g. "
            "cloud, do not measure it)",
        )
    judgement = confidence.judge_median(deviations, limit)
    return _from_judgement(
        name, threshold, judgement, f"over {len(deviations)} successful runs", unit="points"
    )


def _time_in_stage_criterion(gate: StageGate, stage_since: float | None, until: float) -> Criterion | None:
    required = gate.time_in_stage_seconds
    if required is None:
        return None
    name = "time in stage"
    threshold = f">= {gate.time_in_stage} since the last rollout change"
    if stage_since is None:
        return Criterion(
            name=name,
            threshold=threshold,
            measured=None,
            verdict=INSUFFICIENT,
            detail="the audit log records no rollout change, so the stage's start is "
            "unknown (set the stage with `ktrdr rollout stage NAME`)",
        )
    lasted = max(0.0, until - stage_since)
    days = round(lasted / 86400, 2)
    entered = iso_utc(stage_since)[:19].replace("T", " ")
    if lasted >= required:
        return Criterion(
            name=name,
            threshold=threshold,
            measured=days,
            unit="d",
            verdict=PASS,
            detail=f"in this stage since {entered} UTC",
        )
    ready = dt.datetime.fromtimestamp(stage_since + required, tz=dt.timezone.utc)
    return Criterion(
        name=name,
        threshold=threshold,
        measured=days,
        unit="d",
        verdict=INSUFFICIENT,
        detail=f"in this stage since {entered} UTC; can pass from "
        f"{ready.isoformat(timespec='seconds').replace('+00:00', ' UTC')}",
    )


Pair = tuple[ComparisonRecord, RunRecord | None, RunRecord | None]


def _shadow_pairs(
    ledger: RunLedger, settings: RolloutSettings, since: float, until: float, gate: StageGate
) -> tuple[list[Pair], str]:
    """The window's shadow pairs; with too few (at 100 % no run is control-routed), the latest ones."""
    found = ledger.comparisons(
        control=settings.control, candidate=settings.candidate, source="shadow", since=since, until=until
    )
    note = ""
    if len(found) < gate.min_pairs:
        older = ledger.comparisons(
            control=settings.control,
            candidate=settings.candidate,
            source="shadow",
            until=until,
            limit=CONTROL_BASELINE_RUNS,
        )
        if len(older) > len(found):
            found, note = older, f" (the latest {len(older)} shadow pairs of any age)"
    pairs = []
    for comparison in found:
        control = ledger.get(comparison.control_run_id) if comparison.control_run_id else None
        candidate = ledger.get(comparison.candidate_run_id) if comparison.candidate_run_id else None
        pairs.append((comparison, control, candidate))
    return pairs, note


def _comparison_criterion(
    ledger: RunLedger, settings: RolloutSettings, gate: StageGate, pairs: Sequence[Pair], note: str
) -> Criterion | None:
    if not gate.comparison:
        return None
    if pairs:
        name = "shadow comparisons not equivalent"
        different = sum(1 for c, _a, _b in pairs if not c.equivalent)
        threshold = f"< {_fmt_pct(gate.comparison_different_pct)} (upper 95 % bound, Wilson)"
        detail = f"{different} of {len(pairs)} shadow pairs from real traffic differ{note}"
        if len(pairs) < gate.min_pairs:
            return Criterion(
                name=name,
                threshold=threshold,
                unit="%",
                measured=round(different / len(pairs) * 100, 6),
                verdict=INSUFFICIENT,
                runs_needed=gate.min_pairs - len(pairs),
                detail=f"{detail}; at least {gate.min_pairs} pairs needed",
            )
        judgement = confidence.judge_rate(different, len(pairs), gate.comparison_different_pct / 100)
        return _from_judgement(name, threshold, judgement, detail, scale=100, unit="%", what="pairs")
    latest = ledger.latest_comparison(control=settings.control, candidate=settings.candidate)
    name = "latest side-by-side comparison"
    if latest is None:
        return Criterion(
            name=name,
            threshold="equivalent",
            measured=None,
            verdict=INSUFFICIENT,
            detail=f"no comparison of {settings.control} and {settings.candidate} "
            "recorded (run `ktrdr compare`, or `ktrdr rollout shadow PCT` for "
            "pairs from real traffic)",
        )
    differing = ", ".join(
        str(d.get("field", d)) if isinstance(d, Mapping) else str(d) for d in latest.differences
    )
    return Criterion(
        name=name,
        threshold="equivalent",
        measured="equivalent" if latest.equivalent else "different",
        verdict=PASS if latest.equivalent else FAIL,
        detail=f"{latest.strategy} at {latest.created_at} ({latest.source}; no shadow pairs in the window)"
        + (f"; differing: {differing}" if differing and not latest.equivalent else ""),
    )


def _model_accuracy_criteria(gate: StageGate, pairs: Sequence[Pair], note: str) -> list[Criterion]:
    """val_loss rise and val_accuracy drop of the candidate on like-for-like (shadow) pairs."""
    if gate.model_accuracy_pct is None:
        return []
    limit = gate.model_accuracy_pct
    threshold = f"<= {limit:g} % (upper 95 % bound, bootstrap of the paired median)"
    complete = [
        (a, b) for _c, a, b in pairs if a is not None and b is not None and a.status == b.status == "success"
    ]
    out = []
    for field, name, change in (
        ("val_loss", "model accuracy: val_loss rise (paired)", lambda c, k: (k - c) / c),
        ("val_accuracy", "model accuracy: val_accuracy drop (paired)", lambda c, k: (c - k) / c),
    ):
        values = [
            change(getattr(a, field), getattr(b, field)) * 100
            for a, b in complete
            if getattr(a, field) and getattr(b, field) is not None
        ]
        if len(values) < gate.min_pairs:
            why = (
                "no shadow pairs in the window: runs of different strategies and data are not "
                "comparable, so model accuracy is judged only on shadow pairs "
                "(`ktrdr rollout shadow PCT`)"
                if not pairs
                else f"{len(values)} successful shadow pairs; {gate.min_pairs} needed"
            )
            out.append(
                Criterion(
                    name=name,
                    threshold=threshold,
                    measured=None,
                    verdict=INSUFFICIENT,
                    runs_needed=gate.min_pairs - len(values),
                    detail=why,
                )
            )
            continue
        judgement = confidence.judge_median(values, limit)
        out.append(
            _from_judgement(
                name,
                threshold,
                judgement,
                f"candidate vs control on {len(values)} shadow pairs{note}",
                unit="%",
                what="pairs",
            )
        )
    return out


def evaluate_gate(
    stage: str,
    *,
    ledger: RunLedger,
    settings: RolloutSettings,
    config: GateConfig | None = None,
    now: float | None = None,
    stage_since: float | None = None,
) -> GateReport:
    """Judge the gate of ``stage`` (the one being left) from the ledger's last window.

    ``stage_since`` is when the rollout last changed (the audit log), for the
    time-in-stage criterion.
    """
    if stage not in NEXT_STAGE:
        raise BadInputError(f"no gate for stage {stage!r}: use one of {', '.join(NEXT_STAGE)}")
    config = config or GateConfig()
    gate = config[stage]
    until = time.time() if now is None else now
    since = until - gate.window_seconds

    def finished_runs(mode: str) -> list[RunRecord]:
        return ledger.runs(
            mode=mode,
            status=FINISHED_STATUSES,
            since=since,
            until=until,
            exclude_error_kind=NOT_COUNTED_KINDS,
            shadow=False,
        )

    candidate = finished_runs(settings.candidate)
    control_ok = [r for r in finished_runs(settings.control) if r.status == "success"]
    baseline_note = ""
    if len(control_ok) < gate.min_duration_runs:
        older = ledger.runs(
            mode=settings.control, status="success", until=until, limit=CONTROL_BASELINE_RUNS, shadow=False
        )
        if len(older) > len(control_ok):
            control_ok = older
            baseline_note = f" (control baseline: its latest {len(older)} runs of any age)"
    candidate_ok = [r for r in candidate if r.status == "success"]
    pairs, pairs_note = _shadow_pairs(ledger, settings, since, until, gate)

    def values(runs: Sequence[RunRecord], field: str) -> list[float]:
        return [float(getattr(r, field)) for r in runs if getattr(r, field) is not None]

    no_resources = " (runs recorded before resource measurement have none)"
    criteria = [
        _time_in_stage_criterion(gate, stage_since, until),
        _runs_criterion(candidate, gate),
        _error_criterion(candidate, gate),
        _ratio_criterion(
            "median duration ratio (candidate / control)",
            gate.duration_ratio,
            values(candidate_ok, "duration_seconds"),
            values(control_ok, "duration_seconds"),
            gate,
            unit_word="s",
            note=baseline_note,
        ),
        _ratio_criterion(
            "median CPU ratio (candidate / control)",
            gate.cpu_ratio,
            values(candidate_ok, "cpu_seconds"),
            values(control_ok, "cpu_seconds"),
            gate,
            unit_word="CPU s",
            note=baseline_note,
            missing=no_resources,
        ),
        _ratio_criterion(
            "median peak memory ratio (candidate / control)",
            gate.memory_ratio,
            values(candidate_ok, "peak_rss_bytes"),
            values(control_ok, "peak_rss_bytes"),
            gate,
            unit_word="bytes",
            note=baseline_note,
            missing=no_resources,
        ),
        _cancellation_criterion(candidate, gate),
        _progress_criterion(candidate, gate),
        _progress_accuracy_criterion(candidate, gate),
        _comparison_criterion(ledger, settings, gate, pairs, pairs_note),
        *_model_accuracy_criteria(gate, pairs, pairs_note),
    ]
    return GateReport(
        stage=stage,
        next_stage=NEXT_STAGE[stage],
        title=GATE_TITLES[stage],
        control=settings.control,
        candidate=settings.candidate,
        window=gate.window,
        since=since,
        until=until,
        criteria=tuple(c for c in criteria if c is not None),
    )
