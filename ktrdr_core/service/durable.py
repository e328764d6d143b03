"""The service's side of the run ledger: a row for every accepted training, before the 202.

:class:`LedgerRecorder` writes the ``queued`` row when a training is admitted
(so an id the client was given is in the ledger whatever happens next) and
ends it when the training never reaches a mode (cancelled while queued,
refused at shutdown). The manager's ledger plugin takes the row over when the
training starts. Writes run on the service's own I/O threads, never on the
event loop nor on the default executor that health checks use; a write that
fails refuses the training (HTTP 503) rather than accept it unrecorded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from typing import Protocol

from ktrdr_core.ledger.plugin import ledger_enabled, ledger_plugin
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.request import TrainingRequest
from ktrdr_core.rollout.policy import Decision

logger = logging.getLogger(__name__)


class RunRecorder(Protocol):
    """What :class:`~ktrdr_core.service.sessions.TrainingService` needs to make runs durable."""

    async def admitted(self, request: TrainingRequest, decision: Decision) -> int | None:
        """Record an accepted training; returns its ledger row id (``None``: not recorded)."""

    def not_started(self, run_id: int | None, reason: str) -> asyncio.Future[None] | None:
        """Schedule the end of a row whose training never started."""


class NullRecorder:
    """No ledger (``KTRDR_LEDGER=off``, unit tests): nothing is written."""

    async def admitted(self, request: TrainingRequest, decision: Decision) -> int | None:
        return None

    def not_started(self, run_id: int | None, reason: str) -> asyncio.Future[None] | None:
        return None


class LedgerRecorder:
    """Writes admission rows to ``KTRDR_HOME``'s ledger on ``pool``."""

    def __init__(self, pool: concurrent.futures.Executor) -> None:
        self._pool = pool

    @staticmethod
    def _admit(request: TrainingRequest, decision: Decision) -> int:
        ledger_plugin.flush()  # results a full disk held back go first
        return RunLedger().admit_run(
            request_id=request.request_id,
            user_id=request.user_id,
            strategy=request.strategy,
            mode=decision.mode,
            reason=decision.reason,
            bucket=decision.bucket,
            candidate=decision.candidate,
            forced=decision.forced,
            fallback=decision.fallback,
        )

    async def admitted(self, request: TrainingRequest, decision: Decision) -> int | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._admit, request, decision)

    @staticmethod
    def _end(run_id: int, reason: str) -> None:
        try:
            RunLedger().end_unstarted(run_id, status="cancelled", reason=reason)
        except Exception as exc:  # noqa: BLE001 - reconciled as interrupted at the next start-up
            logger.error(
                "could not record run %s as cancelled (%s); the next start-up records it as interrupted",
                run_id,
                exc,
            )

    def not_started(self, run_id: int | None, reason: str) -> asyncio.Future[None] | None:
        if run_id is None:
            return None
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, self._end, run_id, reason)


def recorder_for(pool: concurrent.futures.Executor) -> RunRecorder:
    """The ledger recorder, or a null one when ``KTRDR_LEDGER`` is off."""
    return LedgerRecorder(pool) if ledger_enabled(os.environ) else NullRecorder()
