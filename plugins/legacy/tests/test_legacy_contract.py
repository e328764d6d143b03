"""The legacy mode passes ktrdr's execution-mode contract suite (ktrdr_core.testing)."""

from __future__ import annotations

import pytest

from ktrdr_core.testing import ExecutionModeContract, manager_state_machine
from ktrdr_legacy.mode import LegacyMode


class TestLegacyModeContract(ExecutionModeContract):
    # Every check, every capability, and the advertised 100 ms cancel bound (judged as the p95 of
    # several cancels, so one cancel a busy machine delays does not fail it).

    @pytest.fixture
    def mode(self) -> LegacyMode:
        return LegacyMode()


TestLegacyModeInTheManager = manager_state_machine(LegacyMode, max_examples=2, steps=6).TestCase
