"""The user-hash rollout: stages, gates, settings and the decision (docs/runbook.md)."""

from ktrdr_core.rollout.bucket import bucket_for
from ktrdr_core.rollout.policy import Decision, RolloutPolicy
from ktrdr_core.rollout.settings import STAGES, RolloutSettings, stage_for
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

__all__ = [
    "STAGES",
    "AuditEntry",
    "Decision",
    "RolloutPolicy",
    "RolloutSettings",
    "RolloutStore",
    "bucket_for",
    "stage_for",
]
