"""The 'unified' execution mode: the new :class:`TrainingExecutor` with throttled progress.

The engine (and torch) is imported inside :meth:`UnifiedMode.execute`, so
registering the mode stays cheap (``ktrdr plugins`` never imports torch).
"""

from __future__ import annotations

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
        return ModeHealth.if_importable(
            "unified", ("torch", "ktrdr_core.training.pipeline", "ktrdr_unified.executor")
        )

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        """Run ``TrainingExecutor().execute`` for ``request``.

        Raises :class:`~ktrdr_core.CancellationError` when ``cancel`` fires.
        """
        from ktrdr_unified.executor import TrainingExecutor

        return TrainingExecutor().execute(request, progress, cancel)
