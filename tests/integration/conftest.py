"""Fixtures of the cross-plugin tests (every plugin installed).

The root ``tests/conftest.py`` already gives each test its own KTRDR_HOME and
a clean rollout environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def cli_env(ktrdr_home: Path) -> dict[str, str]:
    """The environment for a ``ktrdr`` subprocess: this test's KTRDR_HOME, one thread."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_TRAINING", "ROLLBACK"))
    }
    env.update(
        KTRDR_HOME=str(ktrdr_home),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="120",
    )
    return env


@pytest.fixture
def ktrdr_cmd() -> list[str]:
    return [sys.executable, "-m", "ktrdr_core.cli.main"]
