"""Pytest fixtures for ktrdr tests, plugin authors' included.

Each test gets its own ``KTRDR_HOME`` (rollout file, ledger, models) and runs
with none of ktrdr's environment variables leaking in from the shell, and with
a plugin manager built afresh. Import the fixture into a ``conftest.py``; it is
``autouse``, so importing it is all it takes::

    from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401

The kit's pytest plugin offers the same fixture, not autouse, to any test
that asks for ``ktrdr_home``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ktrdr_core.plugins import reset_plugin_manager

KTRDR_ENVIRONMENT = (
    "USE_UNIFIED_TRAINING",
    "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE",
    "ROLLBACK_USER_IDS",
    "KTRDR_ROLLOUT_CONTROL",
    "KTRDR_ROLLOUT_CANDIDATE",
    "KTRDR_PLUGINS",
    "KTRDR_DISABLE_PLUGINS",
    "KTRDR_DATA_DIR",
    "KTRDR_STRATEGIES_DIR",
    "KTRDR_LEDGER",
    "KTRDR_API_TOKEN",
)
"""Variables that change what ktrdr does; a test sets the ones it means to."""


def isolated_ktrdr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``KTRDR_HOME`` into ``tmp_path``, clear ktrdr's variables, reset the plugin manager."""
    home = tmp_path / "ktrdr-home"
    monkeypatch.setenv("KTRDR_HOME", str(home))
    for name in KTRDR_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    reset_plugin_manager()
    yield home
    reset_plugin_manager()


@pytest.fixture(autouse=True)
def ktrdr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``KTRDR_HOME`` per test, a clean ktrdr environment, a fresh plugin manager."""
    yield from isolated_ktrdr_home(tmp_path, monkeypatch)
