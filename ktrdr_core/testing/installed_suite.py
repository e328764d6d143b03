"""The contract suite against an installed mode: what ``pytest --ktrdr-mode NAME`` runs.

The mode comes from the installed ``ktrdr`` entry points (a fresh plugin
manager loads them, as ``ktrdr`` does), so the run checks what a user who
installed the plugin gets — its packaging included. The kit's pytest plugin
adds this module to the run; it is not meant to be imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ktrdr_core.testing import ExecutionModeContract, manager_state_machine
from ktrdr_core.testing.entrypoints import installed_mode
from ktrdr_core.testing.fixtures import isolated_ktrdr_home
from ktrdr_core.testing.pytest_plugin import selected_mode_name


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from isolated_ktrdr_home(tmp_path, monkeypatch)


class TestInstalledModeContract(ExecutionModeContract):
    """Every check of the contract suite, with the class defaults, on the installed mode."""

    @pytest.fixture
    def mode(self, ktrdr_mode_name: str) -> Any:
        return installed_mode(ktrdr_mode_name)

    @pytest.fixture(autouse=True)
    def _declared_capabilities(self, request: pytest.FixtureRequest) -> None:
        """``--ktrdr-without CAPABILITY`` turns a capability off, as a subclass's ``flag = False`` would."""
        for name in request.config.getoption("ktrdr_without"):
            setattr(self, name, False)


def _selected_mode() -> Any:
    return installed_mode(selected_mode_name())


TestInstalledModeInTheManager = manager_state_machine(_selected_mode, max_examples=2, steps=6).TestCase
