"""The lifecycle observer that writes every run to the ledger.

Registered by default (``ktrdr-ledger``, after the core's own hooks) unless
``KTRDR_LEDGER`` is ``off``/``false``/``0``/``no``. ``training_started``
inserts the ``running`` row; ``training_finished`` completes it. The ledger
knows nothing of the rollout: the automatic-rollback check is its own
observer (:class:`ktrdr_core.rollout.autorollback.AutoRollbackPlugin`), called
after this one.

The ledger resolves ``KTRDR_HOME`` at each call, so one long-lived process
follows the environment it runs in. A ledger that cannot be written never
fails the training (the manager isolates observers too), and its result is
not dropped: the write is kept in memory, logged, and retried before the next
ledger write of this process (:meth:`LedgerPlugin.flush`); the failure shows
in the service's health meanwhile. Should the process end first, its row is
left open and the next start-up reconciles it as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.ledger.store import LedgerWriteError, RunLedger

logger = logging.getLogger(__name__)

ENV_LEDGER = "KTRDR_LEDGER"
_OFF_VALUES = {"off", "false", "0", "no"}


def ledger_enabled(environ: Mapping[str, str]) -> bool:
    """False when ``KTRDR_LEDGER`` is ``off`` (or ``false``, ``0``, ``no``); on otherwise."""
    return environ.get(ENV_LEDGER, "").strip().lower() not in _OFF_VALUES


def result_metrics(result: Any) -> dict[str, Any]:
    """val_* from the training metrics, test_* from the test metrics (either may be missing)."""
    training = dict(getattr(result, "training_metrics", None) or {})
    test = dict(getattr(result, "test_metrics", None) or {})
    return {
        "val_loss": training.get("val_loss"),
        "val_accuracy": training.get("val_accuracy"),
        "test_accuracy": test.get("test_accuracy"),
        "test_loss": test.get("test_loss"),
    }


class LedgerPlugin:
    """Hook implementations writing to ``KTRDR_HOME/ledger.sqlite3``."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()
        self._unwritten: list[tuple[RunLedger, dict[str, Any], dict[str, Any]]] = []

    def flush(self) -> int:
        """Retry the results that could not be written; returns how many are still unwritten."""
        with self._lock:
            waiting, self._unwritten = self._unwritten, []
        for index, (ledger, start, finish) in enumerate(waiting):
            run_id = finish.pop("run_id", None)
            try:
                if run_id is None:
                    run_id = ledger.start_run(**start)
                ledger.finish_run(run_id, **finish)
            except LedgerWriteError:
                finish["run_id"] = run_id
                with self._lock:
                    self._unwritten[:0] = waiting[index:]
                break
            logger.warning(
                "recorded training %s in the run ledger after an earlier failure", start["request_id"]
            )
        with self._lock:
            return len(self._unwritten)

    @staticmethod
    def _key(ledger: RunLedger, request_id: str) -> tuple[str, str, int]:
        # The manager calls both hooks on the thread that runs the training.
        return (str(ledger.path), request_id, threading.get_ident())

    @staticmethod
    def _start_fields(request: Any, decision: Any) -> dict[str, Any]:
        return {
            "request_id": request.request_id,
            "user_id": request.user_id,
            "strategy": request.strategy,
            "mode": decision.mode,
            "reason": decision.reason,
            "bucket": decision.bucket,
            "candidate": decision.candidate,
            "forced": decision.forced,
            "fallback": decision.fallback,
        }

    @hookimpl
    def training_started(self, request: Any, decision: Any) -> None:
        ledger = RunLedger()
        self.flush()
        try:
            run_id = ledger.start_run(**self._start_fields(request, decision))
        except LedgerWriteError as exc:
            logger.error(
                "training %s: %s; its result is written when the ledger can be", request.request_id, exc
            )
            return
        with self._lock:
            self._open[self._key(ledger, request.request_id)] = run_id

    @hookimpl
    def training_finished(self, request: Any, decision: Any, result: Any, report: Any) -> None:
        ledger = RunLedger()
        with self._lock:
            run_id = self._open.pop(self._key(ledger, request.request_id), None)
        start = {**self._start_fields(request, decision), "started_at": report.started_at}
        finish: dict[str, Any] = dict(
            status=report.status,
            duration_seconds=report.duration_seconds,
            error=result.error if report.status != "success" else None,
            error_kind=(result.metadata or {}).get("error_kind") if report.status == "error" else None,
            metrics=result_metrics(result),
            progress_updates=report.progress_updates,
            interval_summary=report.interval_summary(),
            cancellation_latency_seconds=report.cancellation_latency_seconds,
            resources=getattr(report, "resources", None),
            progress_max_deviation=getattr(report, "progress_max_deviation", None),
            warnings=(result.metadata or {}).get("warnings"),
        )
        try:
            if run_id is None:  # the start was not recorded (ledger was unwritable then): record it now
                run_id = ledger.start_run(**start)
            ledger.finish_run(run_id, **finish)
        except LedgerWriteError as exc:
            logger.error(
                "training %s ended %s but %s; kept in memory and retried before the next ledger write",
                request.request_id,
                report.status,
                exc,
            )
            with self._lock:
                self._unwritten.append((ledger, start, {**finish, "run_id": run_id}))


ledger_plugin = LedgerPlugin()
"""The instance registered by default as ``ktrdr-ledger``."""
