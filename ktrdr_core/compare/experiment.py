"""Run two execution modes side by side on one request, the way GitHub's Scientist does.

:class:`Experiment` runs the *control* and the *candidate* through the
:class:`~ktrdr_core.TrainingManager` — the mode forced for each run, the same
request (strategy, data, overrides, seed, user) under two distinct request
ids — and compares what they produced. As in Scientist:

- the control's result is always kept and returned (``ExperimentResult.value``),
  and an exception raised while routing the control propagates;
- anything the candidate does wrong — a failed result, or an exception even
  outside the mode — is *recorded* in the outcome, never raised.

What the manager measured about each run (duration, progress intervals,
cancellation latency) comes from its :class:`~ktrdr_core.RunReport`, caught
by a lifecycle observer registered for the experiment's request ids only.
The runs go to the run ledger like any other (forced) run.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ktrdr_core.cancellation import CANCELLATION_BOUND_SECONDS, ThreadingCancellationToken
from ktrdr_core.compare.diff import DEFAULT_TOLERANCE, FieldComparison, compare_results, history_gap
from ktrdr_core.compare.stats import interval_stats, ratio
from ktrdr_core.errors import BadInputError, CancellationError
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.manager import TrainingManager
from ktrdr_core.report import RunReport
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult

logger = logging.getLogger(__name__)

ROLES = ("control", "candidate")
DEFAULT_CANCEL_DELAY = 0.25
"""Seconds after a cancel-check run's first progress update at which its token fires."""
DEFAULT_CANCEL_LIMIT = CANCELLATION_BOUND_SECONDS
"""The cancellation bound (docs/contract.md#cancellation): under 100 ms."""
CANCEL_CHECK_EPOCHS = 1000


class ReportCapture:
    """Lifecycle observer keeping the RunReports of a set of request ids."""

    def __init__(self) -> None:
        self.wanted: set[str] = set()
        self.reports: dict[str, RunReport] = {}
        self._lock = threading.Lock()

    @hookimpl
    def training_finished(self, request: TrainingRequest, report: RunReport) -> None:
        with self._lock:
            if request.request_id in self.wanted:
                self.reports[request.request_id] = report


class CountingSink:
    """Progress sink that counts updates; optionally runs a callback on the first one."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.updates = 0
        self.epoch_updates = 0
        self._on_first = on_first

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self.updates += 1
        if metrics.get("progress_type") == "epoch":
            self.epoch_updates += 1
        if self.updates == 1 and self._on_first is not None:
            self._on_first()


@attrs.frozen(kw_only=True)
class Observation:
    """One run of the experiment: what the mode returned and what the manager measured."""

    role: str
    mode: str
    request_id: str
    result: TrainingResult | None
    report: RunReport | None = None
    exception: str | None = None
    """An exception that escaped the manager (only ever recorded for the candidate)."""
    wall_seconds: float = 0.0
    updates_seen: int = 0

    @property
    def status(self) -> str:
        return self.result.status if self.result is not None else "error"

    @property
    def succeeded(self) -> bool:
        return self.result is not None and self.result.success

    @property
    def error(self) -> str | None:
        if self.exception is not None:
            return self.exception
        return self.result.error if self.result is not None else None

    @property
    def duration_seconds(self) -> float:
        return self.report.duration_seconds if self.report is not None else self.wall_seconds

    def progress(self) -> dict[str, Any]:
        """Update count and interval percentiles, from the manager's report."""
        intervals = self.report.progress_intervals if self.report is not None else ()
        updates = self.report.progress_updates if self.report is not None else self.updates_seen
        return {"updates": updates, "intervals": interval_stats(intervals)}

    def to_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "role": self.role,
            "mode": self.mode,
            "request_id": self.request_id,
            "status": self.status,
            "error": self.error,
            "error_kind": (result.metadata or {}).get("error_kind") if result is not None else None,
            "exception": self.exception,
            "duration_seconds": self.duration_seconds,
            "wall_seconds": self.wall_seconds,
            "training_metrics": (
                {k: v for k, v in result.training_metrics.items()} if result is not None else {}
            ),
            "test_metrics": dict(result.test_metrics) if result is not None else {},
            "model_path": result.model_path if result is not None else None,
            "progress": self.progress(),
        }


@attrs.frozen(kw_only=True)
class CancelCheck:
    """One cancelled run of a mode (``--check-cancel``)."""

    role: str
    mode: str
    request_id: str
    status: str
    latency_seconds: float | None
    delay_seconds: float
    error: str | None = None

    @property
    def stopped(self) -> bool:
        return self.status == "cancelled"

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class ExperimentResult:
    """Both observations, the field comparisons, and the verdict."""

    strategy: str
    request: TrainingRequest
    control: Observation
    candidate: Observation
    tolerance: float
    comparisons: tuple[FieldComparison, ...] = ()
    cancel_checks: tuple[CancelCheck, ...] = ()
    max_duration_ratio: float | None = None
    cancel_limit_seconds: float = DEFAULT_CANCEL_LIMIT

    @property
    def value(self) -> TrainingResult | None:
        """The control's result, whatever the candidate did (Scientist's return value)."""
        return self.control.result

    @property
    def duration_ratio(self) -> float | None:
        """Candidate duration / control duration (both as the manager measured them)."""
        if not (self.control.succeeded and self.candidate.succeeded):
            return None
        return ratio(self.candidate.duration_seconds, self.control.duration_seconds)

    def cancel_check(self, role: str) -> CancelCheck | None:
        return next((c for c in self.cancel_checks if c.role == role), None)

    @property
    def differences(self) -> list[dict[str, Any]]:
        """What makes the two not equivalent: one entry per field, each with a ``field`` key."""
        diffs: list[dict[str, Any]] = []
        for obs in (self.control, self.candidate):
            if not obs.succeeded:
                diffs.append(
                    {
                        "field": f"{obs.role}.status",
                        "control": self.control.status,
                        "candidate": self.candidate.status,
                        "note": f"{obs.role} ({obs.mode}) {obs.status}: {obs.error}",
                    }
                )
        diffs.extend(c.to_dict() for c in self.comparisons if not c.equal)
        if self.max_duration_ratio is not None:
            found = self.duration_ratio
            if found is not None and found > self.max_duration_ratio:
                diffs.append(
                    {
                        "field": "duration_ratio",
                        "control": self.control.duration_seconds,
                        "candidate": self.candidate.duration_seconds,
                        "difference": found,
                        "tolerance": self.max_duration_ratio,
                        "note": f"candidate/control duration {found:.3f} > {self.max_duration_ratio:g}",
                    }
                )
        for check in self.cancel_checks:
            if not check.stopped:
                diffs.append(
                    {
                        "field": f"cancellation.{check.role}.status",
                        "control": None,
                        "candidate": None,
                        "note": f"{check.mode} did not stop when "
                        f"cancelled: {check.status} {check.error or ''}".strip(),
                    }
                )
            elif (
                check.role == "candidate"
                and check.latency_seconds is not None
                and check.latency_seconds >= self.cancel_limit_seconds
            ):
                diffs.append(
                    {
                        "field": "cancellation.candidate.latency",
                        "control": None,
                        "candidate": check.latency_seconds,
                        "tolerance": self.cancel_limit_seconds,
                        "note": f"{check.latency_seconds * 1000:.1f} ms, target under "
                        f"{self.cancel_limit_seconds * 1000:.0f} ms",
                    }
                )
        return diffs

    @property
    def differing_fields(self) -> list[str]:
        return [str(d["field"]) for d in self.differences]

    @property
    def equivalent(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        gaps = (
            history_gap(self.control.result, self.candidate.result)
            if self.control.succeeded
            and self.candidate.succeeded
            and self.control.result is not None
            and self.candidate.result is not None
            else {}
        )
        cancel: dict[str, Any] | None = None
        if self.cancel_checks:
            cancel = {check.role: check.to_dict() for check in self.cancel_checks}
            ctl, cand = self.cancel_check("control"), self.cancel_check("candidate")
            cancel["latency_ratio"] = ratio(
                cand.latency_seconds if cand else None, ctl.latency_seconds if ctl else None
            )
            cancel["limit_seconds"] = self.cancel_limit_seconds
        return {
            "strategy": self.strategy,
            "equivalent": self.equivalent,
            "differing_fields": self.differing_fields,
            "differences": self.differences,
            "tolerance": self.tolerance,
            "request": self.request.to_dict(),
            "control": self.control.to_dict(),
            "candidate": self.candidate.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "history_max_gap": gaps,
            "duration_ratio": self.duration_ratio,
            "max_duration_ratio": self.max_duration_ratio,
            "cancellation": cancel,
        }


def _warm_engine() -> None:
    """Import the engine (and torch) before timing, so neither run pays for it."""
    try:
        importlib.import_module("ktrdr_core.training.pipeline")
    except Exception:  # noqa: BLE001 - a mode without the local engine still runs
        logger.debug("could not pre-import the training engine", exc_info=True)


class Experiment:
    """A side-by-side comparison of two modes on the manager ``manager``.

    ``run_plugin(request)`` may return a plugin object (the CLI's signal
    handling, say) registered with the plugin manager for that run only.
    """

    def __init__(
        self,
        manager: TrainingManager,
        *,
        control: str = "legacy",
        candidate: str = "unified",
        tolerance: float = DEFAULT_TOLERANCE,
        max_duration_ratio: float | None = None,
        cancel_limit_seconds: float = DEFAULT_CANCEL_LIMIT,
        run_plugin: Callable[[TrainingRequest], object | None] | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        if control == candidate:
            raise BadInputError(f"control and candidate are both {control!r}: compare two modes")
        if not tolerance >= 0:
            raise BadInputError(f"tolerance must be a number >= 0, got {tolerance!r}")
        self.manager = manager
        self.control = control
        self.candidate = candidate
        self.tolerance = float(tolerance)
        self.max_duration_ratio = max_duration_ratio
        self.cancel_limit_seconds = cancel_limit_seconds
        self._run_plugin = run_plugin
        self._on_event = on_event or (lambda _message: None)

    def check_modes(self) -> None:
        """Raise (a configuration error, exit 2) unless both modes are installed."""
        for name in (self.control, self.candidate):
            self.manager.plugin_manager.get_mode(name)

    def _mode_for(self, role: str) -> str:
        return self.control if role == "control" else self.candidate

    def _train(
        self,
        request: TrainingRequest,
        mode: str,
        sink: CountingSink,
        token: ThreadingCancellationToken | None = None,
    ) -> tuple[TrainingResult, RunReport | None, float]:
        pm = self.manager.plugin_manager
        capture = ReportCapture()
        capture.wanted.add(request.request_id)
        extra = self._run_plugin(request) if self._run_plugin is not None else None
        name = f"ktrdr-compare-{request.request_id}"
        pm.register(capture, name=name)
        if extra is not None:
            pm.register(extra, name=f"{name}-run")
        started = time.perf_counter()
        try:
            result = self.manager.train(request, sink, token, mode=mode)
        finally:
            wall = time.perf_counter() - started
            pm.unregister(capture)
            if extra is not None:
                pm.unregister(extra)
        return result, capture.reports.get(request.request_id), wall

    def _observe(self, role: str, base: TrainingRequest) -> Observation:
        mode = self._mode_for(role)
        request = attrs.evolve(base, request_id=uuid.uuid4().hex)
        sink = CountingSink()
        token = ThreadingCancellationToken()
        self._on_event(f"{role}: training with mode {mode} (request {request.request_id})")
        if role == "control":
            result, report, wall = self._train(request, mode, sink, token)  # errors propagate
            exception = None
        else:
            started = time.perf_counter()
            try:
                result, report, wall = self._train(request, mode, sink, token)
                exception = None
            except Exception as exc:  # noqa: BLE001 - Scientist: the candidate never raises
                logger.warning("candidate %s raised: %s", mode, exc, exc_info=True)
                result, report, wall = None, None, time.perf_counter() - started
                exception = f"{type(exc).__name__}: {exc}"
        if result is not None and result.status == "cancelled" and token.is_cancelled():
            # A cancellation source (Ctrl-C, a deadline) fired: the user wants to stop, so stop here.
            # (A mode that stops as "cancelled" on its own is recorded like any other failure.)
            raise CancellationError(token.reason or result.error or "cancelled")
        return Observation(
            role=role,
            mode=mode,
            request_id=request.request_id,
            result=result,
            report=report,
            exception=exception,
            wall_seconds=wall,
            updates_seen=sink.updates,
        )

    def cancel_once(
        self, role: str, base: TrainingRequest, delay: float = DEFAULT_CANCEL_DELAY
    ) -> CancelCheck:
        """Run ``role``'s mode on a long version of ``base`` and cancel it ``delay`` s into training."""
        mode = self._mode_for(role)
        overrides = {**base.overrides, "epochs": CANCEL_CHECK_EPOCHS, "save_model": False}
        request = attrs.evolve(base, request_id=uuid.uuid4().hex, overrides=overrides)
        token = ThreadingCancellationToken()
        timer = threading.Timer(delay, token.cancel, kwargs={"reason": "ktrdr compare --check-cancel"})
        timer.daemon = True
        sink = CountingSink(on_first=timer.start)
        self._on_event(f"{role}: cancel check with mode {mode}")
        try:
            result, report, _wall = self._train(request, mode, sink, token)
            status, error = result.status, result.error
        except Exception as exc:  # noqa: BLE001 - recorded: a mode that cannot be cancelled
            if role == "control":
                raise
            report, status, error = None, "error", f"{type(exc).__name__}: {exc}"
        finally:
            timer.cancel()
        if status == "cancelled" and token.reason != "ktrdr compare --check-cancel":
            raise CancellationError(token.reason or "cancelled")
        latency = report.cancellation_latency_seconds if report is not None else None
        return CancelCheck(
            role=role,
            mode=mode,
            request_id=request.request_id,
            status=status,
            latency_seconds=latency,
            delay_seconds=delay,
            error=None if status == "cancelled" else error,
        )

    def warm_up(self, request: TrainingRequest) -> None:
        """One untimed one-epoch run per mode, straight on the mode (not in the ledger).

        The first training in a process pays for lazy imports and first-call
        set-up in torch; without a warm-up that cost lands on the control and
        skews the duration ratio. A warm-up that fails is ignored: the real
        run will meet (and record) the same failure.
        """
        _warm_engine()
        overrides = {**request.overrides, "epochs": 1, "save_model": False}
        for role in ROLES:
            mode = self._mode_for(role)
            warm = attrs.evolve(request, request_id=uuid.uuid4().hex, overrides=overrides)
            self._on_event(f"{role}: warm-up run of mode {mode} (untimed, not recorded)")
            try:
                self.manager.plugin_manager.get_mode(mode).execute(
                    warm, lambda _e, _t, _m: None, ThreadingCancellationToken()
                )
            except Exception:  # noqa: BLE001 - see the docstring
                logger.debug("warm-up of %s failed", mode, exc_info=True)

    def run(
        self,
        request: TrainingRequest,
        *,
        check_cancel: bool = False,
        cancel_delay: float = DEFAULT_CANCEL_DELAY,
        warm_up: bool = True,
    ) -> ExperimentResult:
        """Run the control, then the candidate, on ``request``; compare; optionally cancel each once."""
        self.check_modes()
        if warm_up:
            self.warm_up(request)
        else:
            _warm_engine()
        control = self._observe("control", request)
        candidate = self._observe("candidate", request)
        comparisons: tuple[FieldComparison, ...] = ()
        if (
            control.result is not None
            and candidate.result is not None
            and control.succeeded
            and candidate.succeeded
        ):
            comparisons = tuple(compare_results(control.result, candidate.result, self.tolerance))
        checks: tuple[CancelCheck, ...] = ()
        if check_cancel:
            checks = tuple(self.cancel_once(role, request, cancel_delay) for role in ROLES)
        return ExperimentResult(
            strategy=request.strategy,
            request=request,
            control=control,
            candidate=candidate,
            tolerance=self.tolerance,
            comparisons=comparisons,
            cancel_checks=checks,
            max_duration_ratio=self.max_duration_ratio,
            cancel_limit_seconds=self.cancel_limit_seconds,
        )
