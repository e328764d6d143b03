"""The example mode against ktrdr's execution-mode contract suite.

``ExecutionModeContract`` brings the checks (result schema, progress callback,
cancellation, raising callback, same seed, bad input, health); the class only
says which mode to test. ``manager_state_machine`` drives ktrdr's
TrainingManager with the mode through start / cancel / complete / rollout
changes. Run with ``pytest`` in this folder.
"""

from __future__ import annotations

import pytest
from ktrdr_core.testing import ExecutionModeContract, manager_state_machine

from ktrdr_mode_example.mode import ExampleMode


class TestExampleModeContract(ExecutionModeContract):
    @pytest.fixture
    def mode(self) -> ExampleMode:
        return ExampleMode()

    # Declare what your mode does not promise (docs/contract.md#capabilities), for example:
    # deterministic = False              # its backend does not honour overrides["seed"]
    # and tune the suite with class attributes when your mode needs it:
    # cancellation_bound_seconds = 0.5   # a remote mode whose cancel travels over the network
    # overrides = {"batch_size": 64}     # added to every request the suite makes


TestExampleModeInTheManager = manager_state_machine(ExampleMode, max_examples=2, steps=6).TestCase
