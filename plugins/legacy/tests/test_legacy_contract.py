"""The legacy mode passes ktrdr's execution-mode contract suite (ktrdr_core.testing)."""

from __future__ import annotations

import pytest

from ktrdr_core.testing import ExecutionModeContract, manager_state_machine
from ktrdr_legacy.mode import LegacyMode


class TestLegacyModeContract(ExecutionModeContract):
    # Generous on a shared 2-core CI machine, where another process can hold the core for a
    # while; the tight number (p99 a few ms) is measured by benchmarks/bench_modes.py.
    cancellation_bound_seconds = 1.0

    @pytest.fixture
    def mode(self) -> LegacyMode:
        return LegacyMode()


TestLegacyModeInTheManager = manager_state_machine(LegacyMode, max_examples=2, steps=6).TestCase
