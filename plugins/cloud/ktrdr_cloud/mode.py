"""The 'cloud' execution mode (skeleton until its issue lands)."""

from __future__ import annotations

from ktrdr_core import (
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingFailedError,
    TrainingRequest,
    TrainingResult,
)


class CloudMode:
    """runs the unified executor on a Ray cluster."""

    name = "cloud"

    def health(self) -> ModeHealth:
        return ModeHealth.unhealthy("the cloud mode is not implemented yet")

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        raise TrainingFailedError("the cloud mode is not implemented yet")
