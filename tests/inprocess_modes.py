"""Small in-process execution modes for the core's tests (the plugin that registers them is the kit's).

They are real ExecutionMode implementations in miniature — they report progress,
honour cancellation and fail on request — so the manager, the ledger and the
metrics can be tested without the training engine; the engine-backed modes run
through the same manager in tests/integration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ktrdr_core import (
    CancellationError,
    ModeHealth,
    TrainingRequest,
    TrainingResult,
)
from ktrdr_core.testing import ModeProvider, plugin_manager_with

__all__ = ["ModeProvider", "StepMode", "plugin_manager_with"]


class StepMode:
    """Reports ``steps`` batch updates ``delay`` apart, checking its token before each.

    ``fail_at`` raises ``RuntimeError(error)`` right after that step's update;
    ``on_step(step)`` runs after each update (to watch gauges mid-run).
    """

    def __init__(
        self,
        name: str,
        steps: int = 5,
        delay: float = 0.0,
        *,
        fail_at: int | None = None,
        error: str = "disk full",
        on_step: Callable[[int], None] | None = None,
        result: TrainingResult | None = None,
    ) -> None:
        self.name, self.steps, self.delay = name, steps, delay
        self.fail_at, self.error, self.on_step = fail_at, error, on_step
        self.result = result or TrainingResult(success=True, training_metrics={"val_loss": 0.5})

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> TrainingResult:
        for step in range(1, self.steps + 1):
            if cancel.is_cancelled():
                raise CancellationError(cancel.reason or "cancelled")
            progress(1, 1, {"progress_type": "batch", "batch": step})
            if self.on_step is not None:
                self.on_step(step)
            if step == self.fail_at:
                raise RuntimeError(self.error)
            time.sleep(self.delay)
        return self.result
