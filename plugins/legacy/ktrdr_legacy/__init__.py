"""ktrdr-legacy: the 'legacy' execution mode.

The old monolithic StrategyTrainer flow, kept unchanged as the rollout's control.
"""

from typing import Any

__all__ = ["StrategyTrainer"]


def __getattr__(name: str) -> Any:
    """``from ktrdr_legacy import StrategyTrainer`` without importing torch when only the plugin loads."""
    if name == "StrategyTrainer":
        from ktrdr_legacy.strategy_trainer import StrategyTrainer

        return StrategyTrainer
    raise AttributeError(f"module 'ktrdr_legacy' has no attribute {name!r}")
