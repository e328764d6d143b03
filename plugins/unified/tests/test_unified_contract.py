"""The unified mode passes ktrdr's execution-mode contract suite (ktrdr_core.testing)."""

from __future__ import annotations

import pytest

from ktrdr_core.testing import ExecutionModeContract, manager_state_machine
from ktrdr_unified.mode import UnifiedMode


class TestUnifiedModeContract(ExecutionModeContract):
    # Every check, every capability, and the advertised 100 ms cancel bound (judged as the p95 of
    # several cancels, so one cancel a busy machine delays does not fail it).

    @pytest.fixture
    def mode(self) -> UnifiedMode:
        return UnifiedMode()


TestUnifiedModeInTheManager = manager_state_machine(UnifiedMode, max_examples=2, steps=6).TestCase
