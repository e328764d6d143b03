"""One cloud job as the Ray driver sees it: submit, relay progress, forward cancel, collect.

This runs in the driver process (:mod:`ktrdr_cloud.driver`), next to
``ray.init``; the ktrdr process only sees the events it emits. It submits
the task, long-polls progress from the control actor and emits the updates
in sequence order (the ktrdr process paces them), forwards a cancel
cooperatively and force-cancels after ``KTRDR_CLOUD_GRACE_SECONDS``, fails a
task the cluster does not start within ``KTRDR_CLOUD_START_TIMEOUT``, and
finally hands back the worker's output dict (the model's bytes included; the
ktrdr process saves it). Failures are raised as :class:`TrainingFailedError`
or :class:`CancellationError` for the driver loop to report.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ktrdr_cloud.settings import CloudSettings
from ktrdr_core.errors import CancellationError, TrainingFailedError
from ktrdr_core.request import TrainingRequest

__all__ = ["RayJob", "first_line"]

logger = logging.getLogger(__name__)

#: how often the loop wakes to look at the cancel flag
TICK_SECONDS = 0.02
#: how long one long-poll of the control actor for progress may block
PULL_SECONDS = 0.5
#: after ``ray.cancel(force=True)``, how long to wait for Ray to confirm before giving up
FORCE_WAIT_SECONDS = 10.0
#: after the task returned, how long to wait for progress updates still in flight
DRAIN_SECONDS = 3.0

#: ``emit(epoch, total_epochs, metrics)``: one progress update, in order
Emit = Callable[[int, int, dict[str, Any]], None]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class RayJob:
    """Submit one training to Ray and follow it to its end (see the module docstring)."""

    def __init__(
        self,
        connection: Any,
        settings: CloudSettings,
        job_id: str,
        request: TrainingRequest,
        payload: Any,
        emit: Emit,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.job_id = job_id
        self.request = request
        self.request_id = request.request_id
        self.payload = payload
        self.data_puts = 0
        self.emit = emit
        self.control: Any = None
        self.control_alive = True
        self.next_seq = 1
        self.pending: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self._cancel_lock = threading.Lock()
        self._cancelled = threading.Event()
        self.cancel_reason: str | None = None
        self.cancel_sent_at: float | None = None
        self.cancel_sent_wall: float | None = None
        self.forced_at: float | None = None
        self.ref: Any = None
        self.done = False
        self.started = False
        self._submitted_at = 0.0
        self._last_start_check = 0.0

    # -- cancellation --------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """The ktrdr process cancelled the job; safe from any thread, the first reason wins."""
        with self._cancel_lock:
            if self._cancelled.is_set():
                return
            self.cancel_reason = reason or "cancelled"
            self._cancelled.set()
        if self.ref is not None:  # running: tell the worker now, not at the loop's next tick
            self._forward_cancel()

    def _cancelled_error(self) -> CancellationError:
        return CancellationError(self.cancel_reason or "cancelled")

    def _forward_cancel(self) -> None:
        """Tell the worker (through the actor), once; from the loop or the driver's message thread."""
        with self._cancel_lock:
            if self.cancel_sent_at is not None or self.done:
                return
            self.cancel_sent_at = time.monotonic()
            self.cancel_sent_wall = time.time()
        if self.control_alive:
            try:
                self.control.cancel.remote(self.job_id, self.cancel_reason or "cancelled")
                return
            except Exception:  # noqa: BLE001 - fall through to force
                logger.warning(
                    "cloud job %s: cannot reach the control actor to cancel", self.job_id, exc_info=True
                )
        self._force("cannot be told to stop (its control actor is gone)")

    def _force(self, why: str) -> None:
        import ray

        if self.forced_at is not None or self.ref is None:
            return
        self.forced_at = time.monotonic()
        logger.warning("cloud job %s %s; force-cancelling the Ray task", self.job_id, why)
        try:
            ray.cancel(self.ref, force=True)
        except Exception:  # noqa: BLE001 - it may have ended meanwhile
            logger.debug("ray.cancel failed", exc_info=True)

    # -- progress ------------------------------------------------------------------------

    def _take(self, updates: list[tuple[int, float, int, int, dict[str, Any]]]) -> None:
        for seq, _sent_at, epoch, total, metrics in updates:
            if seq >= self.next_seq:
                self.pending[seq] = (epoch, total, metrics)
        while self.next_seq in self.pending:
            self.emit(*self.pending.pop(self.next_seq))
            self.next_seq += 1

    def _drain(self, pull_ref: Any, expected: int) -> None:
        """After the task: collect the updates still in flight and emit them in order."""
        import ray

        deadline = time.monotonic() + DRAIN_SECONDS
        while self.control_alive and self.next_seq <= expected and time.monotonic() < deadline:
            try:
                ref = pull_ref if pull_ref is not None else self.control.pull.remote(self.job_id, 0.2)
                pull_ref = None
                self._take(ray.get(ref, timeout=max(0.1, deadline - time.monotonic())))
            except Exception:  # noqa: BLE001
                break
        if self.pending:  # a gap that never filled: hand on what we have, in order
            for seq in sorted(self.pending):
                self.emit(*self.pending[seq])
            self.pending.clear()

    # -- the run -------------------------------------------------------------------------

    def _open(self) -> None:
        import ray

        for attempt in (1, 2):
            self.control = self.connection.control(renew=attempt == 2)
            try:
                ray.get(
                    self.control.open.remote(self.job_id, self.request_id),
                    timeout=max(30.0, self.settings.connect_timeout),
                )
                return
            except ray.exceptions.GetTimeoutError:
                raise TrainingFailedError(
                    "the Ray cluster did not start the ktrdr control actor "
                    "within 30 s (is it out of resources?)"
                ) from None
            except ray.exceptions.RayActorError:
                if attempt == 2:
                    raise TrainingFailedError("the ktrdr control actor died twice in a row") from None

    def run(self) -> dict[str, Any]:
        """The worker's output dict; raises :class:`TrainingFailedError` / :class:`CancellationError`."""
        try:
            # inside the try: an open that registered the job and then timed out (or
            # failed on the retry) must still close it on the actor
            self._open()
            return self._run()
        finally:
            self.done = True
            if self.control_alive and self.control is not None:  # None: no actor was ever reached
                with contextlib.suppress(Exception):
                    self.control.close.remote(self.job_id)

    def submit(self) -> Any:
        """Submit the task: the one place a job's Ray options and arguments are decided."""
        remote = self.connection.remote_run().options(**self.settings.task_options(self.request))
        return remote.remote(*self._task_args())

    def _task_args(self) -> tuple[Any, ...]:
        """The task's arguments: the payload, its data as object-store refs (put once per content)."""
        from ktrdr_cloud.datastore import attach_data, datastore_for_session

        store = datastore_for_session(self.settings.data_cache_bytes)
        payload, refs, self.data_puts = attach_data(self.payload, store)
        return (payload, self.control, self.job_id, *refs)

    def _run(self) -> dict[str, Any]:
        import ray

        if self._cancelled.is_set():
            raise self._cancelled_error()
        self.ref = self.submit()
        self._submitted_at = time.monotonic()
        pull_ref: Any = self.control.pull.remote(self.job_id, PULL_SECONDS)
        while True:
            if not self.started and self.cancel_sent_at is None:
                self._check_started()
            if self.cancel_sent_at is None and self._cancelled.is_set():
                self._forward_cancel()
            if self.cancel_sent_at is not None:
                waited = time.monotonic() - self.cancel_sent_at
                if self.forced_at is None and waited > self.settings.grace_seconds:
                    self._force(f"did not stop within {self.settings.grace_seconds:g} s of its cancellation")
                if self.forced_at is not None and time.monotonic() - self.forced_at > FORCE_WAIT_SECONDS:
                    logger.error(
                        "cloud job %s: Ray did not confirm the forced cancellation "
                        "within %g s; giving up on it",
                        self.job_id,
                        FORCE_WAIT_SECONDS,
                    )
                    raise self._cancelled_error()
            waiting = [self.ref] if pull_ref is None else [self.ref, pull_ref]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=TICK_SECONDS)
            if pull_ref is not None and pull_ref in ready:
                try:
                    updates = ray.get(pull_ref)
                    self.started = self.started or bool(updates)
                    self._take(updates)
                    pull_ref = self.control.pull.remote(self.job_id, PULL_SECONDS)
                except ray.exceptions.RayActorError:
                    logger.warning(
                        "cloud job %s: the control actor died; progress stops and "
                        "a cancel will force-stop the task",
                        self.job_id,
                    )
                    self.control_alive = False
                    pull_ref = None
            if self.ref in ready or (ready and ray.wait([self.ref], timeout=0)[0]):
                break
        output = self._collect()
        self._log_cancel_timing(output)
        self._drain(pull_ref, int(output.get("progress_count", 0)))
        output["data_objects_put"] = self.data_puts
        return output

    def _check_started(self) -> None:
        """Fail a task the cluster does not start within ``KTRDR_CLOUD_START_TIMEOUT``."""
        import ray

        now = time.monotonic()
        if now - self._last_start_check < 1.0:
            return
        self._last_start_check = now
        if self.control_alive:
            with contextlib.suppress(Exception):
                self.started = bool(ray.get(self.control.is_started.remote(self.job_id), timeout=5))
        if self.started or now - self._submitted_at < self.settings.start_timeout:
            return
        with contextlib.suppress(Exception):
            ray.cancel(self.ref, force=True)
        raise TrainingFailedError(
            f"the Ray cluster did not start the training within "
            f"{self.settings.start_timeout:g} s (KTRDR_CLOUD_START_TIMEOUT): no node has "
            f"{self.settings.resources_text()} free?"
        )

    def _log_cancel_timing(self, output: dict[str, Any]) -> None:
        """How long the cancel took to reach the worker, and the worker to stop (DEBUG)."""
        if self.cancel_sent_wall is None or self.cancel_sent_at is None:
            return
        seen = output.get("cancel_seen_at") if isinstance(output, dict) else None
        reach = (seen - self.cancel_sent_wall) * 1000 if seen else None
        logger.debug(
            "cloud job %s: cancel reached the worker in %s, job returned %.1f ms after the cancel was sent",
            self.job_id,
            f"{reach:.1f} ms" if reach is not None else "(before it started)",
            (time.monotonic() - self.cancel_sent_at) * 1000,
            extra={"ktrdr_cancel_reach_ms": reach},
        )

    def _collect(self) -> dict[str, Any]:
        import ray

        try:
            output = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            if self._cancelled.is_set():
                raise self._cancelled_error() from None
            raise TrainingFailedError("the Ray task was cancelled from outside ktrdr") from None
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.ObjectLostError,
        ) as exc:
            if self._cancelled.is_set():
                raise self._cancelled_error() from None
            raise TrainingFailedError(f"the Ray worker died: {first_line(exc)}") from None
        except ray.exceptions.RayTaskError as exc:
            if self._cancelled.is_set():
                raise self._cancelled_error() from None
            cause = getattr(exc, "cause", None) or exc
            raise TrainingFailedError(
                f"the cloud training task failed on the worker: {type(cause).__name__}: {first_line(cause)}"
            ) from None
        except ray.exceptions.RayError as exc:
            if self._cancelled.is_set():
                raise self._cancelled_error() from None
            raise TrainingFailedError(
                f"the Ray task failed: {type(exc).__name__}: {first_line(exc)}"
            ) from None
        if not isinstance(output, dict):
            raise TrainingFailedError(f"the cloud worker returned {type(output).__name__}")
        return output
