"""The execution-mode contract suite: ``ktrdr_core.testing`` (the contract: docs/contract.md).

Any execution-mode plugin runs it against itself, the way third-party
SQLAlchemy dialects run ``sqlalchemy.testing.suite``::

    import pytest
    from ktrdr_core.testing import ExecutionModeContract, manager_state_machine
    from my_package.mode import MyMode

    class TestMyModeContract(ExecutionModeContract):
        @pytest.fixture
        def mode(self):
            return MyMode()

    TestMyModeInTheManager = manager_state_machine(MyMode, max_examples=2, steps=6).TestCase

- :class:`ExecutionModeContract` — the checks on one mode: result schema,
  progress callback, cancellation (bound, no model left), raising callback,
  same seed same metrics, bad input, ``health()``.
- :class:`ManagerStateMachine` / :func:`manager_state_machine` — a hypothesis
  state machine running the :class:`~ktrdr_core.TrainingManager` with the
  mode through start / cancel / complete / rollout-change sequences.
- :class:`QuickMode` — a fast mode that honours the whole contract (no torch).
- :mod:`ktrdr_core.testing.checks` — the checks as plain functions.

Importing this package imports pytest and hypothesis (only tests import it),
never torch: the mode imports that when it trains. See docs/plugin-authors.md.
"""

from ktrdr_core.testing.checks import (
    ContractViolation,
    ProgressProbe,
    fresh_ktrdr_home,
    leftover_model_dirs,
    result_problems,
)
from ktrdr_core.testing.contract import ExecutionModeContract
from ktrdr_core.testing.modes import QuickMode
from ktrdr_core.testing.statemachine import LifecycleLog, ManagerStateMachine, manager_state_machine

__all__ = [
    "ContractViolation",
    "ExecutionModeContract",
    "LifecycleLog",
    "ManagerStateMachine",
    "ProgressProbe",
    "QuickMode",
    "fresh_ktrdr_home",
    "leftover_model_dirs",
    "manager_state_machine",
    "result_problems",
]
