"""The control actor: one per driver process, shared by every job it runs.

It is the only channel between a driver and its training tasks:

- the worker ``push``\\ es progress updates (already throttled by the unified
  progress bridge, so a few per second), fire-and-forget;
- the driver long-polls them with ``pull`` (returns as soon as there is
  something, or after ``timeout``);
- the driver's ``cancel`` sets a per-job flag that outlives the call, so a
  cancel that lands before the task has even started is still seen;
- a watcher thread in the task blocks in ``wait_cancel`` (one call per
  second at most while nothing happens), so the batch loop only reads a local
  flag.

It is an async actor (every method a coroutine on one event loop): many
blocked ``wait_cancel``/``pull`` calls cost nothing, and no lock is needed.
The class is plain Python; :mod:`ktrdr_cloud.cluster` wraps it with
``ray.remote`` (so importing this module does not import Ray).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

__all__ = ["CANCELLED", "CLOSED", "RUNNING", "ControlActor"]

RUNNING, CANCELLED, CLOSED = "running", "cancelled", "closed"


class _Job:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.opened_at = time.time()
        self.cancel_event = asyncio.Event()
        self.reason: str | None = None
        self.cancelled_at: float | None = None
        self.updates: list[tuple[int, float, int, int, dict[str, Any]]] = []
        self.updates_event = asyncio.Event()
        self.finished_event = asyncio.Event()
        self.info: dict[str, Any] = {}
        self.pushed = 0


class ControlActor:
    """Progress and cancellation for every job of one driver (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}

    def _job(self, job_id: str) -> _Job | None:
        return self._jobs.get(job_id)

    async def ping(self) -> float:
        return time.time()

    # -- the driver's side -----------------------------------------------------------------

    async def open(self, job_id: str, request_id: str) -> None:
        self._jobs.setdefault(job_id, _Job(request_id))

    async def cancel(self, job_id: str, reason: str) -> bool:
        """Flag ``job_id`` as cancelled (the first reason wins); False for an unknown job."""
        job = self._job(job_id)
        if job is None:
            return False
        if not job.cancel_event.is_set():
            job.reason = reason or "cancelled"
            job.cancelled_at = time.time()
            job.cancel_event.set()
        return True

    async def pull(self, job_id: str, timeout: float) -> list[tuple[int, float, int, int, dict[str, Any]]]:
        """The updates pushed since the last pull, waiting up to ``timeout`` for one."""
        job = self._job(job_id)
        if job is None:
            return []
        if not job.updates:
            job.updates_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(job.updates_event.wait(), timeout)
        updates, job.updates = job.updates, []
        return updates

    async def close(self, job_id: str) -> None:
        """Forget ``job_id``; a watcher still waiting on it is told the job is closed."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            job.finished_event.set()
            job.updates_event.set()

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """What is known of every open job (for operators and tests)."""
        return {
            job_id: {
                "request_id": job.request_id,
                "opened_at": job.opened_at,
                "cancelled": job.cancel_event.is_set(),
                "reason": job.reason,
                "pushed": job.pushed,
                **job.info,
            }
            for job_id, job in self._jobs.items()
        }

    async def is_started(self, job_id: str) -> bool:
        """Whether the job's task has started on a worker (it reported its pid)."""
        job = self._job(job_id)
        return job is not None and "pid" in job.info

    # -- the worker's side -----------------------------------------------------------------

    async def started(self, job_id: str, info: dict[str, Any]) -> None:
        job = self._job(job_id)
        if job is not None:
            job.info.update(info)

    async def push(
        self, job_id: str, seq: int, sent_at: float, epoch: int, total_epochs: int, metrics: dict[str, Any]
    ) -> None:
        job = self._job(job_id)
        if job is None:
            return
        job.pushed += 1
        job.updates.append((seq, sent_at, epoch, total_epochs, metrics))
        job.updates_event.set()

    async def wait_cancel(self, job_id: str, timeout: float) -> tuple[str, str | None]:
        """``(CANCELLED, reason)`` as soon as the job is cancelled, ``(RUNNING, None)`` after
        ``timeout``, ``(CLOSED, None)`` once the job has finished or is unknown."""
        job = self._job(job_id)
        if job is None:
            return CLOSED, None
        if not job.cancel_event.is_set() and not job.finished_event.is_set() and timeout > 0:
            waiters = [
                asyncio.ensure_future(job.cancel_event.wait()),
                asyncio.ensure_future(job.finished_event.wait()),
            ]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        if job.cancel_event.is_set():
            return CANCELLED, job.reason
        if job.finished_event.is_set():
            return CLOSED, None
        return RUNNING, None

    async def finished(self, job_id: str) -> int:
        """The worker is done: wake its watcher; returns how many updates were pushed."""
        job = self._job(job_id)
        if job is None:
            return 0
        job.finished_event.set()
        return job.pushed
