"""Fixtures of the ktrdr-legacy tests (run with only ktrdr-core and ktrdr-legacy installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ktrdr_core.plugins import reset_plugin_manager

torch.set_num_threads(1)

ROLLOUT_ENV = ("USE_UNIFIED_TRAINING", "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE", "ROLLBACK_USER_IDS",
               "KTRDR_ROLLOUT_CONTROL", "KTRDR_ROLLOUT_CANDIDATE", "KTRDR_PLUGINS",
               "KTRDR_DISABLE_PLUGINS", "KTRDR_DATA_DIR", "KTRDR_STRATEGIES_DIR")


@pytest.fixture(autouse=True)
def ktrdr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KTRDR_HOME per test, with no rollout or data variables leaking in."""
    home = tmp_path / "ktrdr-home"
    monkeypatch.setenv("KTRDR_HOME", str(home))
    for name in ROLLOUT_ENV:
        monkeypatch.delenv(name, raising=False)
    reset_plugin_manager()
    yield home
    reset_plugin_manager()
