"""Shadow runs: the candidate run in the background on a share of control-routed requests.

LaunchDarkly's "shadow" migration stage and GitHub Scientist's experiments
in production: the user gets the control's result, untouched and on time;
the candidate runs the *same request* in the background, and the pair is
compared with ``ktrdr compare``'s rules and recorded in the ledger as a
comparison from real traffic (``source = "shadow"``). Those pairs are the
only like-for-like evidence of model accuracy, and the gates use them.

Its settings (the share, the slots) are :mod:`ktrdr_core.rollout.shadow`.

How the user's run is protected:

- **Never delays it**: the hook only hands the request to a background
  thread; the candidate runs in its own process (no shared GIL) started with
  ``os.nice(19)``, so on a busy host the user's training gets the CPU first.
- **Bounded**: at most ``max_concurrent`` shadow runs per process; a request
  that finds every slot busy is not shadowed (counted as ``skipped``).
- **Never changes it**: the candidate gets a copy of the request with its own
  request id and ``save_model: false`` (nothing is saved where the user's
  model goes); its outcome is never returned to the user.
- **Cancelled with it**: when the user's run is cancelled or fails, its
  shadow is cancelled (there is nothing like-for-like to compare).

Shadow runs are recorded with ``shadow = 1`` and never count as user traffic
in the gates or the automatic rollback. A request is sampled by its request
id (``md5 % 100 < percentage``), forced runs (``--mode``, ``ktrdr compare``)
never are, and neither is anything while the candidate is not installed or
unhealthy. Only long-lived processes shadow: ``ktrdr serve`` registers
:class:`ShadowPlugin`; a CLI process ends with its training.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.modes import safe_health
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.rollout.shadow import ShadowConfig, sampled
from ktrdr_core.rollout.store import RolloutStore

logger = logging.getLogger(__name__)

NICENESS = 19
CONTROL_WAIT_SECONDS = 30.0
"""How long the comparison waits for the control's ledger row after the control finished."""


def shadow_request(request: TrainingRequest) -> TrainingRequest:
    """The same request under its own id, saving no model."""
    return attrs.evolve(
        request, request_id=uuid.uuid4().hex, overrides={**request.overrides, "save_model": False}
    )


# -- the background process ------------------------------------------------------------


def _child_main(
    request_data: dict[str, Any], mode: str, cancel: Any, conn: Any, niceness: int = NICENESS
) -> None:
    """Runs in the shadow process: train ``mode`` at low priority; send back the result's dict."""
    with contextlib.suppress(OSError):  # already at the lowest priority, or not allowed
        os.nice(niceness)
    os.environ["KTRDR_LEDGER"] = "off"  # the parent records the shadow run, flagged as such
    from ktrdr_core.cancellation import ThreadingCancellationToken
    from ktrdr_core.manager import TrainingManager
    from ktrdr_core.runtime import configure_torch_threads

    token = ThreadingCancellationToken()

    def watch() -> None:
        cancel.wait()
        token.cancel(reason="the user's run ended without a result to compare")

    threading.Thread(target=watch, daemon=True).start()
    try:
        configure_torch_threads()
        request = TrainingRequest.from_dict(request_data)
        result = TrainingManager().train(request, cancel=token, mode=mode)
    except Exception as exc:  # noqa: BLE001 - everything goes back to the parent as a failure
        result = TrainingResult.failed(f"{type(exc).__name__}: {exc}", metadata={"error_kind": "exception"})
    conn.send(result.to_dict())
    conn.close()


@attrs.define
class ShadowJob:
    """One shadow pair in flight."""

    user_request: TrainingRequest
    request: TrainingRequest
    control: str
    candidate: str
    started_at: float
    cancel: Any
    control_done: threading.Event = attrs.field(factory=threading.Event)
    control_result: TrainingResult | None = None
    process: Any = None


class ShadowRunner:
    """Runs shadow jobs in low-priority processes, at most ``max_concurrent`` at once."""

    def __init__(
        self,
        *,
        ledger_factory: Callable[[], RunLedger] = RunLedger,
        on_outcome: Callable[[str, dict[str, float | None]], None] | None = None,
        niceness: int = NICENESS,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._niceness = niceness
        self._ledger_factory = ledger_factory
        self._on_outcome = on_outcome
        self._lock = threading.Lock()
        self._running: dict[str, ShadowJob] = {}
        self._threads: list[threading.Thread] = []

    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def submit(
        self, request: TrainingRequest, *, control: str, candidate: str, max_concurrent: int
    ) -> ShadowJob | None:
        """Start a shadow of ``request`` unless every slot is taken (then ``None``)."""
        with self._lock:
            if len(self._running) >= max_concurrent:
                return None
            job = ShadowJob(
                user_request=request,
                request=shadow_request(request),
                control=control,
                candidate=candidate,
                started_at=time.time(),
                cancel=self._context.Event(),
            )
            self._running[request.request_id] = job
        thread = threading.Thread(
            target=self._run, args=(job,), daemon=True, name=f"ktrdr-shadow-{request.request_id[:8]}"
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def control_finished(self, request_id: str, result: TrainingResult) -> None:
        """The user's run ended: hand its result to its shadow (cancelled unless it succeeded)."""
        with self._lock:
            job = self._running.get(request_id)
        if job is None:
            return
        job.control_result = result
        if not result.success:
            job.cancel.set()
        job.control_done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every shadow job to be recorded (tests, benchmarks, shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            threads[0].join(remaining)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every shadow run and wait for them to stop."""
        with self._lock:
            jobs = list(self._running.values())
        for job in jobs:
            job.cancel.set()
        if not self.wait(timeout):
            for job in jobs:
                if job.process is not None and job.process.is_alive():
                    job.process.kill()

    # -- one job -------------------------------------------------------------------
    def _run(self, job: ShadowJob) -> None:
        try:
            result = self._train(job)
            self._record(job, result)
        except Exception:  # noqa: BLE001 - a shadow's failure must never reach the user
            logger.exception("shadow run of %s failed to run or record", job.user_request.request_id)
        finally:
            with self._lock:
                self._running.pop(job.user_request.request_id, None)

    def _train(self, job: ShadowJob) -> TrainingResult:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(job.request.to_dict(), job.candidate, job.cancel, send, self._niceness),
            name="ktrdr-shadow",
            daemon=True,
        )
        job.process = process
        process.start()
        send.close()
        try:
            while True:
                if receive.poll(0.2):
                    return TrainingResult.from_dict(receive.recv())
                if not process.is_alive():
                    return TrainingResult.failed(
                        f"the shadow process exited with code {process.exitcode} before answering",
                        metadata={"error_kind": "exception"},
                    )
        except EOFError:
            return TrainingResult.failed(
                "the shadow process closed its pipe without answering", metadata={"error_kind": "exception"}
            )
        finally:
            process.join(5)
            receive.close()

    def _record(self, job: ShadowJob, result: TrainingResult) -> None:
        from ktrdr_core.compare.diff import compare_results
        from ktrdr_core.ledger.plugin import result_metrics

        job.control_done.wait()
        control = job.control_result
        ledger = self._ledger_factory()
        meta = dict(result.metadata or {})
        shadow_id = ledger.record_run(
            request_id=job.request.request_id,
            user_id=job.request.user_id,
            strategy=job.request.strategy,
            mode=job.candidate,
            status=result.status,
            reason=f"shadow of {job.user_request.request_id} (a {job.control} run)",
            candidate=True,
            started_at=job.started_at,
            duration_seconds=meta.get("duration_seconds"),
            error=result.error if result.status != "success" else None,
            error_kind=meta.get("error_kind") if result.status == "error" else None,
            metrics=result_metrics(result),
            resources=meta.get("resources"),
            progress_max_deviation=meta.get("progress_max_deviation"),
            shadow=True,
            shadow_of=job.user_request.request_id,
        )
        if control is None or not control.success or result.status == "cancelled":
            self.report_outcome("cancelled", {})
            return
        control_id = self._control_run_id(ledger, job.user_request.request_id)
        if result.success:
            fields = compare_results(control, result)
            differences: list[dict[str, Any]] = [f.to_dict() for f in fields if not f.equal]
        else:
            differences = [
                {
                    "field": "candidate.status",
                    "control": "success",
                    "candidate": result.status,
                    "note": f"candidate ({job.candidate}) {result.status}: {result.error}",
                }
            ]
        ledger.record_comparison(
            strategy=job.request.strategy,
            control=job.control,
            candidate=job.candidate,
            equivalent=not differences,
            differences=differences,
            source="shadow",
            control_run_id=control_id,
            candidate_run_id=shadow_id,
        )
        outcome = "equivalent" if not differences else ("different" if result.success else "candidate_failed")
        self.report_outcome(outcome, _ratios(control, result) if result.success else {})

    @staticmethod
    def _control_run_id(ledger: RunLedger, request_id: str) -> int | None:
        """The user's run's ledger id, once the ledger plugin has completed its row."""
        deadline = time.monotonic() + CONTROL_WAIT_SECONDS
        while True:
            found = [r for r in ledger.find(request_id) if r.status != "running" and not r.shadow]
            if found or time.monotonic() > deadline:
                return found[-1].id if found else None
            time.sleep(0.05)

    def report_outcome(self, result: str, ratios: dict[str, float | None]) -> None:
        if self._on_outcome is not None:
            try:
                self._on_outcome(result, ratios)
            except Exception:  # noqa: BLE001
                logger.exception("shadow outcome callback failed")


def _ratios(control: TrainingResult, candidate: TrainingResult) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("val_loss", "val_accuracy"):
        a, b = control.training_metrics.get(key), candidate.training_metrics.get(key)
        out[f"{key}_ratio"] = None
        if (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and a
            and not isinstance(a, bool)
            and not isinstance(b, bool)
        ):
            out[f"{key}_ratio"] = float(b) / float(a)
    return out


class ShadowPlugin:
    """Lifecycle observer that starts and feeds shadow runs (registered by ``ktrdr serve``)."""

    def __init__(
        self,
        runner: ShadowRunner | None = None,
        store_factory: Callable[[], RolloutStore] = RolloutStore,
        plugin_manager: Any = None,
    ) -> None:
        self.runner = runner or ShadowRunner()
        self._store_factory = store_factory
        self._pm = plugin_manager
        """When given, the candidate must be installed and healthy here to be shadowed."""

    def _candidate_ready(self, candidate: str) -> bool:
        if self._pm is None:
            return True
        modes = self._pm.execution_modes()
        return candidate in modes and safe_health(modes[candidate]).healthy

    def _wanted(self, request: TrainingRequest, decision: Any) -> tuple[ShadowConfig, RolloutSettings] | None:
        if decision.forced or decision.candidate:
            return None
        store = self._store_factory()
        config = ShadowConfig.read(store)
        if config.percentage <= 0 or not sampled(request.request_id, config.percentage):
            return None
        settings = RolloutPolicy.from_env(home=store.home).settings
        if decision.mode != settings.control or decision.fallback:
            return None  # a fallback means the candidate is missing or unhealthy
        if not self._candidate_ready(settings.candidate):
            return None  # a pair that cannot run says nothing about the candidate's results
        return config, settings

    @hookimpl
    def training_started(self, request: TrainingRequest, decision: Any) -> None:
        try:
            wanted = self._wanted(request, decision)
        except ConfigurationError as exc:
            logger.warning("shadow settings unusable, not shadowing: %s", exc)
            return
        if wanted is None:
            return
        config, settings = wanted
        job = self.runner.submit(
            request,
            control=settings.control,
            candidate=settings.candidate,
            max_concurrent=config.max_concurrent,
        )
        if job is None:
            logger.info("every shadow slot is busy: request %s not shadowed", request.request_id)
            self.runner.report_outcome("skipped", {})

    @hookimpl
    def training_finished(self, request: TrainingRequest, result: TrainingResult) -> None:
        self.runner.control_finished(request.request_id, result)
