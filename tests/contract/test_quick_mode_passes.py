"""A correct mode passes the whole contract suite, and the manager state machine.

QuickMode honours the contract while simulating the training, so this runs
in a couple of seconds; the real modes run the same suite in their own
plugins' tests (plugins/*/tests/test_contract.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ktrdr_core.testing import ExecutionModeContract, QuickMode, manager_state_machine


class TestQuickModeContract(ExecutionModeContract):
    """QuickMode as a plugin installs it: pip installed a distribution whose entry point registers it."""

    @pytest.fixture
    def mode(self, viaentry_installed: Path) -> QuickMode:
        return QuickMode("viaentry")

    cancel_epochs = 100  # ~8 ms an epoch: a cancel drawn within 0.4 s lands mid-training
    max_examples = 3


TestQuickModeInTheManager = manager_state_machine(
    lambda: QuickMode("quick", batch_seconds=0.005), max_examples=5, steps=12
).TestCase
