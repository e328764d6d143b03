"""Progress: the callback signature every mode honours, and progress sinks.

The signature is exactly ``(epoch, total_epochs, metrics)`` — the one the
battle-tested ModelTrainer has always used (docs/contract.md). No
adapter may change it; a sink is simply another callable of that shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

ProgressCallback = Callable[[int, int, Mapping[str, Any]], None]
"""``progress(epoch, total_epochs, metrics)``; ``metrics["progress_type"]`` is "batch" or "epoch"."""

logger = logging.getLogger(__name__)


@runtime_checkable
class ProgressSink(Protocol):
    """Receives the progress updates of one request (console bar, metrics, ledger, file)."""

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        """Handle one update; must be quick, it runs on the training thread."""


class ProgressFanout:
    """Sends each update to several callbacks; one that raises is logged once and skipped.

    A broken sink must never kill a training (docs/contract.md), nor stop the
    other sinks from hearing about progress.
    """

    def __init__(self, callbacks: Iterable[ProgressCallback]) -> None:
        self._callbacks = list(callbacks)
        self._reported: set[int] = set()

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        for index, callback in enumerate(self._callbacks):
            try:
                callback(epoch, total_epochs, metrics)
            except Exception as exc:  # noqa: BLE001 - a sink's bug is not the training's
                if index not in self._reported:
                    self._reported.add(index)
                    logger.warning(
                        "progress sink %r raised %s: %s; its later errors are ignored",
                        callback,
                        type(exc).__name__,
                        exc,
                    )
                    logger.debug("traceback of progress sink %r", callback, exc_info=True)
