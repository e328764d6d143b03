"""Training sessions of the service: admission, scheduling, progress fan-out.

Everything here runs on the event loop's thread, except the progress
callback, which the training thread calls: it buffers the update under a lock
and schedules *one* drain on the loop with ``loop.call_soon_threadsafe``
(bursts, e.g. the legacy mode's per-batch flood, are drained together, so
the loop wakes up once per burst rather than once per batch).

Bounds (so memory never grows without limit):

* at most ``max_concurrent`` trainings run and ``queue_size`` wait; one more
  is refused (:class:`QueueFullError`, HTTP 429); a place is reserved while
  the admission's ledger row is written, so two admissions never share one;
  a mode that runs elsewhere (a cluster) may say how many of its trainings
  fit at once with an optional ``capacity()`` method, and its trainings are
  then admitted by that number instead of ``max_concurrent``, which is meant
  for local cores;
* finished sessions are kept in an LRU of ``keep_finished`` (default 1000);
* each session keeps the last ``replay`` progress events for late
  subscribers, and trims them to the last one when it ends;
* each subscriber (an SSE stream) buffers at most ``subscriber_buffer``
  events; a consumer slower than that loses the oldest ones (counted in the
  next event's ``dropped``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import functools
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.jsonutil import json_safe
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.policy import Decision
from ktrdr_core.service.durable import NullRecorder, RunRecorder

logger = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
STATUS_FOR_RESULT = {"success": COMPLETED, "error": FAILED, "cancelled": CANCELLED}


class TrainingRunner(Protocol):
    """What the service needs from :class:`~ktrdr_core.manager.TrainingManager`."""

    def train(
        self,
        request: TrainingRequest,
        progress: ProgressCallback | None = None,
        cancel: Any = None,
        *,
        decision: Decision | None = None,
    ) -> TrainingResult: ...


class ServiceError(Exception):
    """Base of the errors the routes turn into HTTP answers."""


class QueueFullError(ServiceError):
    """Every running slot and queue place is taken (HTTP 429)."""


class ShuttingDownError(ServiceError):
    """The service is stopping and takes no new training (HTTP 503)."""


class UnknownTrainingError(ServiceError):
    """No session with that id (HTTP 404)."""


class AlreadyFinishedError(ServiceError):
    """The training has already ended, so it cannot be cancelled (HTTP 409)."""

    def __init__(self, session: TrainingSession) -> None:
        super().__init__(f"training {session.id} has already ended ({session.status}); nothing to cancel")
        self.session = session


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return dt.datetime.fromtimestamp(wall, dt.timezone.utc).isoformat(timespec="milliseconds")


class Subscriber:
    """One progress stream's buffer (an SSE connection)."""

    def __init__(self, maxlen: int) -> None:
        self.items: deque[tuple[str, int, dict[str, Any]]] = deque(maxlen=maxlen)
        self.dropped = 0
        self.closed = False
        self._wake = asyncio.Event()

    def push(self, item: tuple[str, int, dict[str, Any]]) -> None:
        if len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append(item)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Wait until something arrives, the stream closes, or ``timeout`` passes."""
        if self.items or self.closed:
            return
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)


class ThreadSafeProgress:
    """The progress callback given to the mode: hands updates to the loop thread-safely."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[tuple[float, int, int, dict[str, Any]]]], None],
        *,
        max_buffer: int = 10_000,
    ) -> None:
        self._loop = loop
        self._deliver = deliver
        self._lock = threading.Lock()
        self._buffer: deque[tuple[float, int, int, dict[str, Any]]] = deque(maxlen=max_buffer)
        self._scheduled = False

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        item = (time.monotonic(), int(epoch), int(total_epochs), dict(metrics))
        with self._lock:
            self._buffer.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: the process is going away
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items = list(self._buffer)
            self._buffer.clear()
            self._scheduled = False
        if items:
            self._deliver(items)


class TrainingSession:
    """One training request and everything the service knows about it."""

    def __init__(
        self,
        request: TrainingRequest,
        decision: Decision,
        *,
        replay: int = 256,
        subscriber_buffer: int = 1024,
        max_subscribers: int = 64,
    ) -> None:
        self.id = request.request_id
        self.request = request
        self.decision = decision
        self.ledger_id: int | None = None
        self.token = ThreadingCancellationToken()
        self.status = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.cancel_requested = False
        self.result: TrainingResult | None = None
        self.progress: dict[str, Any] = {"updates": 0, "metrics": {}}
        self._seq = itertools.count(1)
        self._replay: deque[tuple[str, int, dict[str, Any]]] = deque(maxlen=replay)
        self._subscriber_buffer = subscriber_buffer
        self._max_subscribers = max_subscribers
        self.subscribers: set[Subscriber] = set()
        self.done = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    # -- progress ---------------------------------------------------------
    def on_progress(self, items: Iterable[tuple[float, int, int, dict[str, Any]]]) -> None:
        """Record updates (on the loop) and send each to every subscriber."""
        if self.finished:
            return
        for timestamp, epoch, total_epochs, metrics in items:
            clean = json_safe(metrics)
            batch = clean.get("batch")
            total_batches = clean.get("total_batches_per_epoch")
            kind = clean.get("progress_type")
            percent = None
            if total_epochs > 0:
                done = float(epoch)
                if (
                    kind == "batch"
                    and isinstance(batch, int)
                    and isinstance(total_batches, int)
                    and total_batches > 0
                ):
                    done = epoch - 1 + batch / total_batches
                percent = round(max(0.0, min(100.0, 100.0 * done / total_epochs)), 2)
            self.progress = {
                "updates": self.progress["updates"] + 1,
                "epoch": epoch,
                "total_epochs": total_epochs,
                "batch": batch if kind == "batch" else None,
                "total_batches": total_batches,
                "percent": percent,
                "progress_type": kind,
                "metrics": clean,
                "timestamp": timestamp,
            }
            seq = next(self._seq)
            event = {"seq": seq, **self.progress}
            event.pop("updates")
            self._publish(("progress", seq, event))

    def _publish(self, item: tuple[str, int, dict[str, Any]]) -> None:
        self._replay.append(item)
        for subscriber in self.subscribers:
            subscriber.push(item)

    def subscribe(self, after: int | None = None) -> Subscriber:
        """A new stream: the buffered events (after ``after``), then live ones until the end."""
        if len(self.subscribers) >= self._max_subscribers:
            raise QueueFullError(f"training {self.id} already has {len(self.subscribers)} progress streams")
        subscriber = Subscriber(self._subscriber_buffer)
        for item in self._replay:
            if after is None or item[1] > after:
                subscriber.push(item)
        if self.finished:
            subscriber.close()
        else:
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    # -- state changes ----------------------------------------------------
    def mark_running(self) -> None:
        self.status = RUNNING
        self.started_at = time.time()

    def finish(self, result: TrainingResult) -> None:
        """Record the result, send ``end`` to every subscriber and close their streams."""
        if self.finished:
            return
        self.result = result
        self.status = STATUS_FOR_RESULT.get(result.status, FAILED)
        self.finished_at = time.time()
        last_progress = [item for item in self._replay if item[0] == "progress"][-1:]
        self._replay.clear()
        self._replay.extend(last_progress)
        seq = next(self._seq)
        end = {"seq": seq, "status": self.status, "error": result.error, "timestamp": time.monotonic()}
        self._publish(("end", seq, end))
        for subscriber in self.subscribers:
            subscriber.close()
        self.subscribers.clear()
        self.done.set()

    def to_dict(self, *, with_result: bool = True) -> dict[str, Any]:
        result = self.result.to_dict() if (self.result is not None and with_result) else None
        return {
            "id": self.id,
            "status": self.status,
            "strategy": self.request.strategy,
            "user_id": self.request.user_id,
            "decision": self.decision.to_dict(),
            "request": json_safe(self.request.to_dict()),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "cancel_requested": self.cancel_requested,
            "error": self.result.error if self.result is not None else None,
            "progress": dict(self.progress),
            "result": json_safe(result) if result is not None else None,
            "links": {
                "self": f"/api/v1/trainings/{self.id}",
                "events": f"/api/v1/trainings/{self.id}/events",
                "cancel": f"/api/v1/trainings/{self.id}/cancel",
            },
        }


class TrainingService:
    """Admits, queues, runs and forgets trainings; one per app.

    Trainings run on a dedicated thread pool of ``max_concurrent`` threads
    (not the loop's default executor, which health checks and file I/O use:
    long trainings can never starve them, and the service never looks hung).
    """

    def __init__(
        self,
        runner: TrainingRunner,
        *,
        max_concurrent: int = 2,
        queue_size: int = 16,
        keep_finished: int = 1000,
        replay: int = 256,
        subscriber_buffer: int = 1024,
        recorder: RunRecorder | None = None,
        capacity_of: Callable[[str], int | None] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if queue_size < 0:
            raise ValueError("queue_size must not be negative")
        if keep_finished < 1:
            raise ValueError("keep_finished must be at least 1")
        self.runner = runner
        self.max_concurrent = max_concurrent
        self._capacity_of = capacity_of
        self.queue_size = queue_size
        self.keep_finished = keep_finished
        self._replay = replay
        self._subscriber_buffer = subscriber_buffer
        self._pending: OrderedDict[str, TrainingSession] = OrderedDict()
        self._running: dict[str, TrainingSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: OrderedDict[str, TrainingSession] = OrderedDict()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.recorder: RunRecorder = recorder if recorder is not None else NullRecorder()
        self._reserved = 0
        self._writes: set[asyncio.Future[None]] = set()
        self._remote_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._remote: set[str] = set()  # running ids admitted by their mode's capacity
        self.closing = False

    # -- looking -----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {
            "running": len(self._running),
            "running_remote": len(self._remote),
            "queued": len(self._pending),
            "max_concurrent": self.max_concurrent,
            "queue_size": self.queue_size,
            "finished_kept": len(self._finished),
        }

    def has_room(self) -> bool:
        local = len(self._running) - len(self._remote)
        return local + len(self._pending) + self._reserved < self.max_concurrent + self.queue_size

    def get(self, training_id: str) -> TrainingSession:
        for table in (self._running, self._pending):
            if training_id in table:
                return table[training_id]
        if training_id in self._finished:
            self._finished.move_to_end(training_id)
            return self._finished[training_id]
        raise UnknownTrainingError(f"no training with id {training_id!r}")

    def sessions(self) -> list[TrainingSession]:
        """Running, then queued, then finished (most recent first)."""
        return [*self._running.values(), *self._pending.values(), *reversed(self._finished.values())]

    # -- changing ------------------------------------------------------------
    def check_admission(self) -> None:
        """Raise :class:`ShuttingDownError` or :class:`QueueFullError` if no training can be admitted."""
        if self.closing:
            raise ShuttingDownError("the service is shutting down and takes no new training")
        if not self.has_room():
            raise QueueFullError(
                f"the service is busy: {len(self._running)} training(s) running and "
                f"{len(self._pending)} waiting (limits: --max-concurrent {self.max_concurrent}, "
                f"--queue-size {self.queue_size}); retry later"
            )

    async def admit(self, request: TrainingRequest, decision: Decision) -> TrainingSession:
        """Record the training as ``queued`` in the ledger, then :meth:`submit` it.

        The place in the queue is reserved while the row is written. If the
        write fails, the error propagates (nothing was accepted); if the
        service starts stopping meanwhile, the row is ended as cancelled.
        """
        self.check_admission()
        self._reserved += 1
        try:
            ledger_id = await self.recorder.admitted(request, decision)
        finally:
            self._reserved -= 1
        try:
            return self.submit(request, decision, ledger_id=ledger_id)
        except ServiceError as exc:
            self._track(self.recorder.not_started(ledger_id, f"not started: {exc}"))
            raise

    def submit(
        self, request: TrainingRequest, decision: Decision, *, ledger_id: int | None = None
    ) -> TrainingSession:
        """Accept a training: start it now, or queue it; :class:`QueueFullError` when full."""
        self.check_admission()
        session = TrainingSession(
            request, decision, replay=self._replay, subscriber_buffer=self._subscriber_buffer
        )
        if session.id in self._running or session.id in self._pending or session.id in self._finished:
            raise ServiceError(f"training id {session.id} is already in use")
        session.ledger_id = ledger_id
        self._pending[session.id] = session
        self._start_ready()
        return session

    def _track(self, write: asyncio.Future[None] | None) -> None:
        if write is not None:
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    def _end_unstarted(self, session: TrainingSession, reason: str) -> None:
        """Finish a queued session that never reached a mode, in memory and in the ledger."""
        del self._pending[session.id]
        self._track(self.recorder.not_started(session.ledger_id, reason))
        self._finish(session, self._not_started(session, reason))

    def cancel(self, training_id: str, reason: str = "cancelled over HTTP") -> TrainingSession:
        """Cancel a queued training (it never starts) or a running one (its token fires)."""
        session = self.get(training_id)
        if session.finished:
            raise AlreadyFinishedError(session)
        session.cancel_requested = True
        if session.id in self._pending:
            self._end_unstarted(session, f"{reason} before it started")
        else:
            session.token.cancel(reason=reason)
        return session

    @staticmethod
    def _not_started(session: TrainingSession, reason: str) -> TrainingResult:
        return TrainingResult.cancelled(
            reason,
            metadata={
                "mode": session.decision.mode,
                "decision": session.decision.to_dict(),
                "request_id": session.id,
                "user_id": session.request.user_id,
                "strategy": session.request.strategy,
                "duration_seconds": 0.0,
                "started": False,
            },
        )

    def _capacity(self, mode: str) -> int | None:
        """The mode's own concurrency limit, or None for the local ``max_concurrent``."""
        if self._capacity_of is None:
            return None
        try:
            capacity = self._capacity_of(mode)
        except Exception:  # noqa: BLE001 - a broken capacity() falls back to the local limit
            logger.warning("capacity of mode %r failed; using --max-concurrent", mode, exc_info=True)
            return None
        return None if capacity is None else max(1, int(capacity))

    def _start_ready(self) -> None:
        """Start every pending training its pool has room for, oldest first in each pool."""
        if self.closing:
            return
        local = len(self._running) - len(self._remote)
        remote_by_mode: dict[str, int] = {}
        for running_id in self._remote:
            mode = self._running[running_id].decision.mode
            remote_by_mode[mode] = remote_by_mode.get(mode, 0) + 1
        for session in list(self._pending.values()):
            mode = session.decision.mode
            capacity = self._capacity(mode)
            if capacity is None:
                if local >= self.max_concurrent:
                    continue
                local += 1
            else:
                if remote_by_mode.get(mode, 0) >= capacity:
                    continue
                remote_by_mode[mode] = remote_by_mode.get(mode, 0) + 1
                self._remote.add(session.id)
            del self._pending[session.id]
            self._running[session.id] = session
            session.mark_running()
            self._tasks[session.id] = asyncio.get_running_loop().create_task(
                self._run(session), name=f"ktrdr-training-{session.id}"
            )

    def _pool(self, session: TrainingSession) -> concurrent.futures.ThreadPoolExecutor:
        if session.id in self._remote:  # waits on a cluster: threads are cheap, cores are not ours
            if self._remote_executor is None:
                self._remote_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=64, thread_name_prefix="ktrdr-remote-training"
                )
            return self._remote_executor
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_concurrent, thread_name_prefix="ktrdr-training"
            )
        return self._executor

    async def _run(self, session: TrainingSession) -> None:
        loop = asyncio.get_running_loop()
        progress = ThreadSafeProgress(loop, session.on_progress)
        call = functools.partial(
            self.runner.train, session.request, progress, session.token, decision=session.decision
        )
        future = loop.run_in_executor(self._pool(session), call)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            session.token.cancel(reason="the service stopped the training")
            await asyncio.wait({future})
            result = self._result_of(future, session)
            self._finish(session, result)
            raise
        except Exception as exc:  # noqa: BLE001 - a routing error (mode gone) fails this one only
            logger.warning("training %s could not run: %s", session.id, exc)
            result = TrainingResult.failed(
                f"{type(exc).__name__}: {exc}",
                metadata={"mode": session.decision.mode, "decision": session.decision.to_dict()},
            )
        self._finish(session, result)

    @staticmethod
    def _result_of(future: asyncio.Future[TrainingResult], session: TrainingSession) -> TrainingResult:
        if future.cancelled():
            return TrainingResult.cancelled(session.token.reason or "cancelled")
        exc = future.exception()
        if exc is not None:
            return TrainingResult.failed(f"{type(exc).__name__}: {exc}")
        return future.result()

    def _finish(self, session: TrainingSession, result: TrainingResult) -> None:
        if session.finished:
            return
        self._running.pop(session.id, None)
        self._remote.discard(session.id)
        self._pending.pop(session.id, None)
        self._tasks.pop(session.id, None)
        session.finish(result)
        self._finished[session.id] = session
        while len(self._finished) > self.keep_finished:
            self._finished.popitem(last=False)
        logger.info("training %s %s (mode %s)", session.id, session.status, session.decision.mode)
        self._start_ready()

    # -- stopping ------------------------------------------------------------
    def begin_shutdown(self, reason: str = "the server is shutting down") -> None:
        """Take no new work, cancel the queue, fire every running token, end the streams.

        Safe to call more than once; :meth:`shutdown` then waits for the modes to stop.
        """
        if self.closing:
            return
        self.closing = True
        for session in list(self._pending.values()):
            session.cancel_requested = True
            self._end_unstarted(session, f"{reason} before it started")
            logger.warning("cancelled queued training %s (never started): %s", session.id, reason)
        for session in list(self._running.values()):
            session.cancel_requested = True
            session.token.cancel(reason=reason)
            logger.warning("cancelling running training %s: %s", session.id, reason)

    async def shutdown(self, timeout: float = 60.0) -> None:
        """:meth:`begin_shutdown`, then wait (up to ``timeout``) for running trainings to stop.

        Each mode returns its cancelled result, so the manager's lifecycle
        observers (the run ledger, the metrics) record the run as cancelled.
        """
        self.begin_shutdown()
        tasks = list(self._tasks.values())
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                logger.error("training task %s did not stop within %.0f s", task.get_name(), timeout)
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout)
        for pool in (self._executor, self._remote_executor):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._executor = self._remote_executor = None
