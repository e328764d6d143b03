"""The 'legacy' execution mode (skeleton until its issue lands)."""

from __future__ import annotations

from ktrdr_core import (
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingFailedError,
    TrainingRequest,
    TrainingResult,
)


class LegacyMode:
    """the old monolithic StrategyTrainer flow, kept unchanged as the rollout's control."""

    name = "legacy"

    def health(self) -> ModeHealth:
        return ModeHealth.unhealthy("the legacy mode is not implemented yet")

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        raise TrainingFailedError("the legacy mode is not implemented yet")
