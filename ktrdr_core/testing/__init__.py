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

- :class:`ExecutionModeContract` — the checks on one mode, in groups switched
  by capability flags (``deterministic``, ``stores_models``, ...): name and
  entry point, ``health()``, result schema and saved model, progress callback
  and a raising one, cancellation (before start, mid-run, the p95 bound),
  same seed same metrics, bad input.
- :class:`ManagerStateMachine` / :func:`manager_state_machine` — a hypothesis
  state machine running the :class:`~ktrdr_core.TrainingManager` with the
  mode through start / cancel / complete / rollout-change sequences.
- :class:`QuickMode` — a fast mode that honours the whole contract (no torch).
- :mod:`ktrdr_core.testing.checks` — the checks as plain functions.
- :class:`CancelAtCheck`, :class:`ModeProvider`, :func:`plugin_manager_with` — helpers for
  a mode's own tests (a token that fires at its n-th check; modes in a private plugin manager).
- ``pytest --ktrdr-mode NAME`` (:mod:`ktrdr_core.testing.pytest_plugin`) — the whole suite
  against an installed mode, with no test code.

It needs the ``testing`` extra (``pip install 'ktrdr-core[testing]'``: pytest
and hypothesis); without it, the import says so in one line. Names are
loaded on first use, so the pytest plugin (:mod:`ktrdr_core.testing.pytest_plugin`,
loaded by every pytest run where ktrdr-core is installed) costs nothing until a
test asks for the kit. Never imports torch: the mode does, when it trains.
See docs/plugin-authors.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ktrdr_core.extras import require_extra

# pytest now; hypothesis on first use of a name, so that the pytest plugin never breaks a pytest run
require_extra("testing", "ktrdr_core.testing", ("pytest",))

if TYPE_CHECKING:
    from ktrdr_core.testing.checks import (
        ContractViolation,
        ProgressProbe,
        fresh_ktrdr_home,
        leftover_model_dirs,
        result_problems,
    )
    from ktrdr_core.testing.contract import ExecutionModeContract
    from ktrdr_core.testing.helpers import CancelAtCheck, ModeProvider, plugin_manager_with
    from ktrdr_core.testing.modes import QuickMode
    from ktrdr_core.testing.statemachine import LifecycleLog, ManagerStateMachine, manager_state_machine

_EXPORTS = {
    "ContractViolation": "checks",
    "ProgressProbe": "checks",
    "fresh_ktrdr_home": "checks",
    "leftover_model_dirs": "checks",
    "result_problems": "checks",
    "ExecutionModeContract": "contract",
    "CancelAtCheck": "helpers",
    "ModeProvider": "helpers",
    "plugin_manager_with": "helpers",
    "QuickMode": "modes",
    "LifecycleLog": "statemachine",
    "ManagerStateMachine": "statemachine",
    "manager_state_machine": "statemachine",
}

__all__ = [
    "CancelAtCheck",
    "ContractViolation",
    "ExecutionModeContract",
    "LifecycleLog",
    "ManagerStateMachine",
    "ModeProvider",
    "ProgressProbe",
    "QuickMode",
    "fresh_ktrdr_home",
    "leftover_model_dirs",
    "manager_state_machine",
    "plugin_manager_with",
    "result_problems",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ktrdr_core.testing' has no attribute {name!r}")
    require_extra("testing", "ktrdr_core.testing")  # hypothesis too, from here on
    value = getattr(importlib.import_module(f"ktrdr_core.testing.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
