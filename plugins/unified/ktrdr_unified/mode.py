"""The 'unified' execution mode (skeleton until its issue lands)."""

from __future__ import annotations

from ktrdr_core import (
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingFailedError,
    TrainingRequest,
    TrainingResult,
)


class UnifiedMode:
    """the new composed TrainingExecutor pipeline with throttled progress, the rollout's candidate."""

    name = "unified"

    def health(self) -> ModeHealth:
        return ModeHealth.unhealthy("the unified mode is not implemented yet")

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        raise TrainingFailedError("the unified mode is not implemented yet")
