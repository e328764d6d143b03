"""ktrdr-unified: the 'unified' execution mode.

The new composed TrainingExecutor pipeline with throttled progress, the rollout's candidate.
"""

from typing import Any

__all__ = ["TrainingExecutor"]


def __getattr__(name: str) -> Any:
    """``from ktrdr_unified import TrainingExecutor`` without importing torch when only the plugin loads."""
    if name == "TrainingExecutor":
        from ktrdr_unified.executor import TrainingExecutor

        return TrainingExecutor
    raise AttributeError(f"module 'ktrdr_unified' has no attribute {name!r}")
