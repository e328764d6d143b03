"""The migration plan's quality gates, judged from the run ledger.

A gate belongs to the stage you are trying to *leave*: the gate of ``canary``
holds the criteria for canary → expanded (the plan's "Quality Gates for
2.1 → 2.2"). The mapping:

=========  ===================  ======================================
stage      leads to             the plan's gate
=========  ===================  ======================================
off        canary               Phase 1 → Phase 2 (side-by-side, errors)
canary     expanded             2.1 → 2.2 (error < 1 %, within 10 %)
expanded   full                 2.2 → 2.3 (error < 0.5 %, equivalent, cancel < 100 ms)
full       Phase 3 (cleanup)    2.3 → Phase 3 (error < 0.1 %, meets or exceeds)
=========  ===================  ======================================

Every gate lists the same criteria with its stage's thresholds; each says
PASS, FAIL or INSUFFICIENT DATA, and the gate is FAIL if any criterion
fails, else INSUFFICIENT DATA if any lacks data, else PASS.

Thresholds live in the rollout file under ``"gates"``: a key at the top
applies to every stage, a key under a stage name to that stage only::

    "gates": {"window": "7d", "min_runs": 20, "canary": {"error_rate_pct": 2.0}}

A criterion set to ``null`` (``duration_ratio``, ``cancel_p95_ms``,
``progress_interval_s``) or ``false`` (``comparison``) is not judged.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import attrs

from ktrdr_core.errors import BadInputError, ConfigurationError
from ktrdr_core.ledger.store import FINISHED_STATUSES, RunLedger, RunRecord
from ktrdr_core.ledger.times import iso_utc, parse_duration
from ktrdr_core.report import percentile
from ktrdr_core.rollout.settings import STAGES, RolloutSettings

PASS = "PASS"
FAIL = "FAIL"
INSUFFICIENT = "INSUFFICIENT DATA"

EXIT_CODES = {PASS: 0, FAIL: 1, INSUFFICIENT: 3}
"""``ktrdr rollout gate`` / ``advance`` exit codes: 0 PASS, 1 FAIL, 3 INSUFFICIENT DATA."""

NEXT_STAGE: dict[str, str | None] = {"off": "canary", "canary": "expanded", "expanded": "full", "full": None}
GATE_TITLES = {
    "off": "Phase 1 -> Phase 2 (off -> canary)",
    "canary": "Stage 2.1 -> 2.2 (canary -> expanded)",
    "expanded": "Stage 2.2 -> 2.3 (expanded -> full)",
    "full": "Stage 2.3 -> Phase 3 (full -> remove the control mode)",
}
BAD_INPUT_KIND = "bad_input"
CONTROL_BASELINE_RUNS = 100
"""With too few control runs in the window, the duration baseline is this many latest ones."""


@attrs.frozen(kw_only=True)
class StageGate:
    """The thresholds of one stage's gate."""

    window: str = "7d"
    min_runs: int = 20
    """Finished candidate runs the window must hold before the error rate means anything."""
    min_duration_runs: int = 5
    """Successful runs each side needs before durations are compared."""
    min_cancelled_runs: int = 0
    """Cancelled candidate runs required; 0 judges cancellation only where cancelled runs exist."""
    error_rate_pct: float = 1.0
    """The candidate's error rate must be strictly below this (percent)."""
    duration_ratio: float | None = 1.10
    """Candidate median duration / control median duration must be at most this."""
    cancel_p95_ms: float | None = 100.0
    """The p95 cancellation latency must be strictly below this."""
    progress_interval_s: tuple[float, float] | None = (0.1, 1.0)
    """The median progress interval must lie within these bounds (inclusive)."""
    comparison: bool = True
    """Whether the latest side-by-side comparison must be equivalent."""

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window, what="gates window")


DEFAULT_GATES: dict[str, StageGate] = {
    # Phase 1: only forced runs (compare, manual tests) reach the candidate; fewer are needed.
    "off": StageGate(min_runs=5, error_rate_pct=1.0, duration_ratio=1.10),
    "canary": StageGate(error_rate_pct=1.0, duration_ratio=1.10),
    # "Performance equivalent to old": equal within the run-to-run noise of wall-clock medians.
    "expanded": StageGate(error_rate_pct=0.5, duration_ratio=1.05),
    # "Meets or exceeds legacy": no slower than 2 %, the noise we accept on a median.
    "full": StageGate(error_rate_pct=0.1, duration_ratio=1.02),
}
STAGE_KEYS = tuple(field.name for field in attrs.fields(StageGate))


def _number(value: Any, where: str, *, low: float, high: float | None = None,
            low_inclusive: bool = True, integer: bool = False) -> Any:
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


def _parse_stage_values(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        at = f"{where}.{key}'"
        if key == "window":
            if not isinstance(value, str):
                raise ConfigurationError(f"{at} must be a duration such as '7d', got {value!r}")
            try:
                parse_duration(value, what=at)
            except BadInputError as exc:
                raise ConfigurationError(str(exc)) from None
            values[key] = value
        elif key in ("min_runs", "min_duration_runs"):
            values[key] = _number(value, at, low=1, integer=True)
        elif key == "min_cancelled_runs":
            values[key] = _number(value, at, low=0, integer=True)
        elif key == "error_rate_pct":
            values[key] = _number(value, at, low=0, high=100, low_inclusive=False)
        elif key in ("duration_ratio", "cancel_p95_ms"):
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
    """One line of a gate: what is judged, against what, what was measured, and the verdict."""

    name: str
    threshold: str
    measured: float | int | str | None
    verdict: str
    detail: str = ""
    unit: str = ""
    """The unit of ``measured`` (``%``, ``ms``, ``s``, or empty)."""

    def measured_text(self) -> str:
        if self.measured is None:
            return "-"
        value = f"{self.measured:.4g}" if isinstance(self.measured, float) else str(self.measured)
        return f"{value} {self.unit}" if self.unit else value

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


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


def _runs_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion:
    n = len(finished)
    return Criterion(
        name="candidate runs",
        threshold=f">= {gate.min_runs} finished runs in the window",
        measured=n,
        verdict=PASS if n >= gate.min_runs else INSUFFICIENT,
        detail="" if n >= gate.min_runs else f"{gate.min_runs - n} more needed",
    )


def _error_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion:
    n = len(finished)
    errors = sum(1 for r in finished if r.status == "error")
    threshold = f"< {_fmt_pct(gate.error_rate_pct)}"
    if n < gate.min_runs:
        measured: float | None = errors / n * 100 if n else None
        return Criterion(name="candidate error rate", threshold=threshold, unit="%",
                         measured=measured, verdict=INSUFFICIENT,
                         detail=f"{errors} errors in {n} runs; {gate.min_runs} runs needed")
    return Criterion(
        name="candidate error rate",
        threshold=threshold,
        unit="%",
        measured=errors / n * 100,
        verdict=PASS if below(errors, n, gate.error_rate_pct) else FAIL,
        detail=f"{errors} errors in {n} runs (bad-input failures not counted)",
    )


def _duration_criterion(
    candidate_ok: Sequence[RunRecord], control_ok: Sequence[RunRecord], baseline_note: str,
    gate: StageGate,
) -> Criterion | None:
    if gate.duration_ratio is None:
        return None
    threshold = f"<= {gate.duration_ratio:.3g}"
    cand = [r.duration_seconds for r in candidate_ok if r.duration_seconds is not None]
    ctrl = [r.duration_seconds for r in control_ok if r.duration_seconds is not None]
    enough = min(len(cand), len(ctrl)) >= gate.min_duration_runs
    if not enough or not statistics.median(ctrl):
        return Criterion(
            name="median duration ratio (candidate / control)", threshold=threshold, measured=None,
            verdict=INSUFFICIENT,
            detail=f"{len(cand)} candidate and {len(ctrl)} control successful runs; "
                   f"{gate.min_duration_runs} of each needed",
        )
    cand_median, ctrl_median = statistics.median(cand), statistics.median(ctrl)
    ratio = cand_median / ctrl_median
    return Criterion(
        name="median duration ratio (candidate / control)",
        threshold=threshold,
        measured=round(ratio, 4),
        verdict=PASS if ratio <= gate.duration_ratio else FAIL,
        detail=f"candidate {cand_median:.3g} s over {len(cand)} runs, control {ctrl_median:.3g} s "
               f"over {len(ctrl)} runs{baseline_note}",
    )


def _cancellation_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion | None:
    if gate.cancel_p95_ms is None:
        return None
    latencies = [r.cancellation_latency_seconds * 1000 for r in finished
                 if r.status == "cancelled" and r.cancellation_latency_seconds is not None]
    threshold = f"< {gate.cancel_p95_ms:g} ms"
    name = "cancellation latency p95"
    if not latencies or len(latencies) < gate.min_cancelled_runs:
        if gate.min_cancelled_runs == 0:
            return Criterion(name=name, threshold=threshold, measured=None, verdict=PASS,
                             detail="no cancelled candidate runs in the window; none required")
        return Criterion(name=name, threshold=threshold, measured=None, verdict=INSUFFICIENT,
                         detail=f"{len(latencies)} cancelled runs; {gate.min_cancelled_runs} needed")
    p95 = percentile(latencies, 95)
    assert p95 is not None
    return Criterion(name=name, threshold=threshold, measured=round(p95, 3), unit="ms",
                     verdict=PASS if p95 < gate.cancel_p95_ms else FAIL,
                     detail=f"over {len(latencies)} cancelled runs")


def _progress_criterion(finished: Sequence[RunRecord], gate: StageGate) -> Criterion | None:
    if gate.progress_interval_s is None:
        return None
    low, high = gate.progress_interval_s
    medians = [r.interval_p50 for r in finished if r.interval_p50 is not None]
    threshold = f"{low:g} s to {high:g} s"
    name = "median progress interval"
    if not medians:
        return Criterion(name=name, threshold=threshold, measured=None, verdict=INSUFFICIENT,
                         detail="no candidate run in the window reported two progress updates")
    value = statistics.median(medians)
    return Criterion(name=name, threshold=threshold, measured=round(value, 4), unit="s",
                     verdict=PASS if low <= value <= high else FAIL,
                     detail=f"median of the per-run medians of {len(medians)} runs")


def _comparison_criterion(ledger: RunLedger, settings: RolloutSettings, gate: StageGate) -> Criterion | None:
    if not gate.comparison:
        return None
    latest = ledger.latest_comparison(control=settings.control, candidate=settings.candidate)
    name = "latest side-by-side comparison"
    if latest is None:
        return Criterion(name=name, threshold="equivalent", measured=None, verdict=INSUFFICIENT,
                         detail=f"no comparison of {settings.control} and {settings.candidate} "
                                "recorded (run `ktrdr compare`)")
    differing = ", ".join(str(d.get("field", d)) if isinstance(d, Mapping) else str(d)
                          for d in latest.differences)
    return Criterion(
        name=name, threshold="equivalent",
        measured="equivalent" if latest.equivalent else "different",
        verdict=PASS if latest.equivalent else FAIL,
        detail=f"{latest.strategy} at {latest.created_at}"
               + (f"; differing: {differing}" if differing and not latest.equivalent else ""),
    )


def evaluate_gate(
    stage: str,
    *,
    ledger: RunLedger,
    settings: RolloutSettings,
    config: GateConfig | None = None,
    now: float | None = None,
) -> GateReport:
    """Judge the gate of ``stage`` (the one being left) from the ledger's last window."""
    if stage not in NEXT_STAGE:
        raise BadInputError(f"no gate for stage {stage!r}: use one of {', '.join(NEXT_STAGE)}")
    config = config or GateConfig()
    gate = config[stage]
    until = time.time() if now is None else now
    since = until - gate.window_seconds

    def finished_runs(mode: str) -> list[RunRecord]:
        return ledger.runs(mode=mode, status=FINISHED_STATUSES, since=since, until=until,
                           exclude_error_kind=BAD_INPUT_KIND)

    candidate = finished_runs(settings.candidate)
    control_ok = [r for r in finished_runs(settings.control) if r.status == "success"]
    baseline_note = ""
    if len(control_ok) < gate.min_duration_runs:
        older = ledger.runs(mode=settings.control, status="success", until=until,
                            limit=CONTROL_BASELINE_RUNS)
        if len(older) > len(control_ok):
            control_ok = older
            baseline_note = f" (control baseline: its latest {len(older)} runs of any age)"
    candidate_ok = [r for r in candidate if r.status == "success"]

    criteria = [
        _runs_criterion(candidate, gate),
        _error_criterion(candidate, gate),
        _duration_criterion(candidate_ok, control_ok, baseline_note, gate),
        _cancellation_criterion(candidate, gate),
        _progress_criterion(candidate, gate),
        _comparison_criterion(ledger, settings, gate),
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
