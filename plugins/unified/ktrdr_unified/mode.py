"""The 'unified' execution mode: the new :class:`TrainingExecutor` with throttled progress.

The engine (and torch) is imported inside :meth:`UnifiedMode.execute`, so
registering the mode stays cheap (``ktrdr plugins`` never imports torch).
"""

from __future__ import annotations

import importlib.util

from ktrdr_core import (
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingRequest,
    TrainingResult,
)


class UnifiedMode:
    """The new composed TrainingExecutor pipeline with throttled progress, the rollout's candidate."""

    name = "unified"

    def health(self) -> ModeHealth:
        """Healthy when the engine and torch can be imported (checked without importing them)."""
        for module in ("torch", "ktrdr_core.training.pipeline", "ktrdr_unified.executor"):
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return ModeHealth.unhealthy(f"the unified mode cannot run: {module} is not installed")
        return ModeHealth.ok()

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        """Run ``TrainingExecutor().execute`` for ``request``.

        Raises :class:`~ktrdr_core.CancellationError` when ``cancel`` fires.
        """
        from ktrdr_unified.executor import TrainingExecutor

        return TrainingExecutor().execute(request, progress, cancel)
