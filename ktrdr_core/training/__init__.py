"""The training engine (docs/engine.md), shared by every execution mode.

Importing this package is cheap: the submodules that need torch are loaded on
first use of a name below (``from ktrdr_core.training import run_training``).

- :func:`run_training` (``pipeline``) — the whole pipeline for a request.
- :class:`ModelTrainer` (``trainer``) — the training loop and its progress contract.
- :func:`load_strategy`, :func:`list_strategies` (``strategy``, no torch).
- :func:`save_model`, :func:`load_model` (``storage``) — versioned model folders.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_training": "ktrdr_core.training.pipeline",
    "STEP_NAMES": "ktrdr_core.training.pipeline",
    "ModelTrainer": "ktrdr_core.training.trainer",
    "load_model": "ktrdr_core.training.storage",
    "save_model": "ktrdr_core.training.storage",
    "LoadedModel": "ktrdr_core.training.storage",
    "load_strategy": "ktrdr_core.training.strategy",
    "list_strategies": "ktrdr_core.training.strategy",
    "StrategyConfig": "ktrdr_core.training.strategy",
    "BUY": "ktrdr_core.training.labels",
    "HOLD": "ktrdr_core.training.labels",
    "SELL": "ktrdr_core.training.labels",
    "LABEL_NAMES": "ktrdr_core.training.labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ktrdr_core.training' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
