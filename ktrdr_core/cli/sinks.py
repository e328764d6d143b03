"""Built-in progress sinks and cancellation sources of the CLI.

Each is a small object with one job; :class:`CliPlugin` offers them to the
manager through the ordinary hooks, so the CLI uses ktrdr's own extension
points rather than a side door.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ktrdr_core.cancellation import CancellationSource, CancellationToken, DeadlineCancellation
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.jsonutil import json_safe
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest

summary_logger = logging.getLogger("ktrdr.progress")


class JsonLinesSink:
    """Writes one JSON object per update: ``timestamp`` (monotonic s), epoch, total_epochs, metrics."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        record = {
            "timestamp": time.monotonic(),
            "epoch": epoch,
            "total_epochs": total_epochs,
            **json_safe(dict(metrics)),
        }
        with self._lock:
            if self._handle is not None:
                self._handle.write(json.dumps(record) + "\n")
                self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


class LogSummarySink:
    """Logs one line per finished epoch — never per batch (progress is not logging).

    A throttled mode may fold epoch ends into a later update (``folded_epochs``,
    docs/contract.md); each folded epoch is logged under its own number.
    """

    def __init__(self, logger: logging.Logger = summary_logger) -> None:
        self._logger = logger
        self._last_epoch_logged = 0

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        for folded in metrics.get("folded_epochs") or ():
            self._log_epoch(int(folded["epoch"]), total_epochs, folded)
        if metrics.get("progress_type") == "epoch":
            self._log_epoch(epoch, total_epochs, metrics)

    def _log_epoch(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        if "val_loss" not in metrics or epoch <= self._last_epoch_logged:
            return
        self._last_epoch_logged = epoch
        self._logger.info(
            "epoch %d/%d: train_loss=%.4f val_loss=%.4f val_accuracy=%.3f",
            epoch,
            total_epochs,
            float(metrics.get("train_loss", float("nan"))),
            float(metrics["val_loss"]),
            float(metrics.get("val_accuracy", float("nan"))),
        )


class SignalCancellation:
    """SIGINT / SIGTERM cancel the token; a second SIGINT aborts at once.

    Must be attached from the main thread (where Python runs signal handlers).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._token: CancellationToken | None = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        token = self._token
        if token is None:
            return
        if token.is_cancelled() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        token.cancel(reason=f"interrupted by {signal.Signals(signum).name}")

    def attach(self, token: CancellationToken) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._token = token
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def detach(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._token = None


class CliPlugin:
    """The CLI's sinks and sources for one request, offered through the hooks."""

    def __init__(
        self,
        request: TrainingRequest,
        *,
        sinks: Iterable[ProgressCallback] = (),
        timeout: float | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.request_id = request.request_id
        self.sinks = list(sinks)
        self.sources: list[CancellationSource] = []
        if handle_signals:
            self.sources.append(SignalCancellation())
        if timeout is not None:
            self.sources.append(DeadlineCancellation(timeout))

    @hookimpl
    def progress_sinks(self, request: TrainingRequest) -> list[ProgressCallback] | None:
        return self.sinks if request.request_id == self.request_id else None

    @hookimpl
    def cancellation_sources(self, request: TrainingRequest) -> list[CancellationSource] | None:
        return self.sources if request.request_id == self.request_id else None

    @hookimpl
    def training_finished(self, request: TrainingRequest) -> None:
        if request.request_id != self.request_id:
            return
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()
