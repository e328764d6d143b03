"""The TrainingManager: route a request to a mode, run it, measure it, report it.

It is the only place that knows about all the hooks at once: it asks the
selector for a :class:`Decision`, attaches the cancellation sources, fans the
mode's progress out to the sinks (timing each update), tells the lifecycle
observers, and turns whatever the mode did — return, raise, stop on cancel —
into a :class:`TrainingResult`. A mode that raises never takes it down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ktrdr_core.cancellation import CancellationSource, CancellationToken, ThreadingCancellationToken
from ktrdr_core.errors import BadInputError, CancellationError, ConfigurationError, KtrdrError
from ktrdr_core.plugins import KtrdrPluginManager, get_plugin_manager
from ktrdr_core.progress import ProgressCallback, ProgressFanout
from ktrdr_core.progress_accuracy import ProgressAccuracy
from ktrdr_core.report import RunReport
from ktrdr_core.request import TrainingRequest
from ktrdr_core.resources import ResourceMeter
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.policy import Decision, RolloutPolicy

logger = logging.getLogger(__name__)


class ObservedToken:
    """Wraps a foreign token to time its cancellation (for the latency metric).

    A foreign token cannot tell when it fired, so this records when it was first
    *seen* fired — by the mode's checks, which come at every batch: the latency
    it yields can be short by at most one check interval.
    """

    def __init__(self, inner: CancellationToken) -> None:
        self._inner = inner
        self._seen_at: float | None = None

    @property
    def reason(self) -> str | None:
        return self._inner.reason

    @property
    def cancelled_at(self) -> float | None:
        return self._seen_at

    def is_cancelled(self) -> bool:
        fired = self._inner.is_cancelled()
        if fired and self._seen_at is None:
            self._seen_at = time.monotonic()
        return fired

    def cancel(self, reason: str = "cancelled") -> None:
        self._inner.cancel(reason=reason)
        self.is_cancelled()

    async def wait_for_cancellation(self) -> None:
        await self._inner.wait_for_cancellation()
        self.is_cancelled()


class ProgressTimer:
    """Records when each update reached the sinks, for the interval percentiles."""

    def __init__(self, downstream: ProgressCallback) -> None:
        self._downstream = downstream
        self.times: list[float] = []

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self.times.append(time.monotonic())
        self._downstream(epoch, total_epochs, metrics)

    @property
    def intervals(self) -> tuple[float, ...]:
        return tuple(b - a for a, b in zip(self.times, self.times[1:], strict=False))


class TrainingManager:
    """Routes training requests to execution modes and runs them.

    The rollout policy is read for every request (``policy_provider``), so a
    change of the rollout file or the environment applies to the next request
    without a restart.
    """

    def __init__(
        self,
        plugin_manager: KtrdrPluginManager | None = None,
        policy_provider: Callable[[], RolloutPolicy] | None = None,
    ) -> None:
        self.plugin_manager = plugin_manager or get_plugin_manager()
        self._policy_provider = policy_provider or RolloutPolicy.from_env
        self._active: Counter[str] = Counter()
        self._active_lock = threading.Lock()

    # -- deciding --------------------------------------------------------------
    def decide(self, request: TrainingRequest, mode: str | None = None) -> Decision:
        """The decision for ``request``: the selector's, or ``mode`` when forced."""
        policy = self._policy_provider()
        if mode is not None:
            self.plugin_manager.get_mode(mode)
            return policy.forced(request.user_id, mode)
        modes = self.plugin_manager.execution_modes()
        return self.plugin_manager.calls.select_mode(request=request, policy=policy, modes=modes)

    def active_sessions(self) -> dict[str, int]:
        """Trainings running now, by mode."""
        with self._active_lock:
            return {mode: count for mode, count in self._active.items() if count}

    # -- running ---------------------------------------------------------------
    def train(
        self,
        request: TrainingRequest,
        progress: ProgressCallback | None = None,
        cancel: CancellationToken | None = None,
        *,
        mode: str | None = None,
        decision: Decision | None = None,
    ) -> TrainingResult:
        """Run ``request`` to the end on this thread and return its result.

        Errors in the request's routing (bad configuration, a mode that is not
        installed) are raised; anything that goes wrong *inside* the mode
        becomes a failed or cancelled result.
        """
        decision = decision or self.decide(request, mode)
        execution_mode = self.plugin_manager.get_mode(decision.mode)
        token: Any = cancel if cancel is not None else ThreadingCancellationToken()
        if not hasattr(token, "cancelled_at"):
            token = ObservedToken(token)
        hooks = self.plugin_manager.calls

        sinks = hooks.progress_sinks(request=request, decision=decision)
        if progress is not None:
            sinks.append(progress)
        accuracy = ProgressAccuracy()
        timer = ProgressTimer(ProgressFanout([accuracy, *sinks]))

        sources = hooks.cancellation_sources(request=request)
        hooks.training_started(request=request, decision=decision)
        with self._active_lock:
            self._active[decision.mode] += 1
        started_wall, started = time.time(), time.monotonic()
        attached: list[CancellationSource] = []
        meter = ResourceMeter().start()
        try:
            for source in sources:
                source.attach(token)
                attached.append(source)
            result = self._run_mode(execution_mode, request, timer, token)
        except Exception as exc:  # noqa: BLE001 - a source that cannot attach fails this run only
            logger.warning("cancellation source could not attach: %s", exc)
            result = TrainingResult.failed(
                f"a cancellation source failed to attach: {exc}", metadata={"error_kind": "exception"}
            )
        finally:
            ended = time.monotonic()
            usage = meter.stop()
            accuracy.close()
            for source in attached:
                try:
                    source.detach()
                except Exception as exc:  # noqa: BLE001
                    logger.warning("cancellation source %r failed to detach: %s", source, exc)
            with self._active_lock:
                self._active[decision.mode] -= 1

        cancelled_at = token.cancelled_at
        latency = ended - cancelled_at if result.status == "cancelled" and cancelled_at else None
        duration = ended - started
        result = result.with_metadata(
            mode=decision.mode,
            decision=decision.to_dict(),
            duration_seconds=duration,
            request_id=request.request_id,
            user_id=request.user_id,
            strategy=request.strategy,
            resources=usage.to_dict(),
            progress_max_deviation=accuracy.max_deviation,
        )
        report = RunReport(
            request_id=request.request_id,
            mode=decision.mode,
            status=result.status,
            started_at=started_wall,
            duration_seconds=duration,
            progress_updates=len(timer.times),
            progress_intervals=timer.intervals,
            cancellation_latency_seconds=latency,
            error=result.error if result.status == "error" else None,
            resources=usage.to_dict(),
            progress_max_deviation=accuracy.max_deviation,
        )
        hooks.training_finished(request=request, decision=decision, result=result, report=report)
        return result

    @staticmethod
    def _run_mode(
        execution_mode: Any, request: TrainingRequest, progress: ProgressCallback, token: Any
    ) -> TrainingResult:
        try:
            result = execution_mode.execute(request, progress, token)
        except CancellationError as exc:
            return TrainingResult.cancelled(exc.reason)
        except (BadInputError, ConfigurationError) as exc:
            # The request cannot work anywhere: not the mode's fault, so gates can tell it apart.
            return TrainingResult.failed(str(exc), metadata={"error_kind": "bad_input"})
        except Exception as exc:  # noqa: BLE001 - a failing mode is a failed result
            logger.warning("mode %s failed: %s", execution_mode.name, exc)
            logger.debug("traceback of mode %s", execution_mode.name, exc_info=True)
            message = str(exc) if isinstance(exc, KtrdrError) else f"{type(exc).__name__}: {exc}"
            return TrainingResult.failed(message, metadata={"error_kind": "exception"})
        if not isinstance(result, TrainingResult):
            return TrainingResult.failed(
                f"mode {execution_mode.name!r} returned {type(result).__name__}, not a TrainingResult"
            )
        if token.is_cancelled() and not result.success and result.status != "cancelled":
            return TrainingResult.cancelled(token.reason or "cancelled")
        return result

    async def train_async(
        self,
        request: TrainingRequest,
        progress: ProgressCallback | None = None,
        cancel: CancellationToken | None = None,
        *,
        mode: str | None = None,
        decision: Decision | None = None,
    ) -> TrainingResult:
        """:meth:`train` on a worker thread, so the event loop never blocks.

        If the awaiting task is cancelled, the training's token is cancelled
        too and the task waits for the mode to stop (nothing keeps running
        behind the caller's back).
        """
        token = cancel if cancel is not None else ThreadingCancellationToken()
        if decision is None:  # reads the rollout file and asks the candidate's health: off the loop too
            decision = await asyncio.to_thread(self.decide, request, mode)
        running = asyncio.ensure_future(
            asyncio.to_thread(self.train, request, progress, token, decision=decision)
        )
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            token.cancel(reason="the awaiting task was cancelled")
            await asyncio.wait({running})
            raise
