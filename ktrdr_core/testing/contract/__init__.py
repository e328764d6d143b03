"""The execution-mode contract suite: subclass it once, with your mode.

In the manner of fsspec's abstract test classes and SQLAlchemy's dialect
suite, a plugin's tests say::

    import pytest
    from ktrdr_core.testing import ExecutionModeContract
    from my_package.mode import MyMode

    class TestMyModeContract(ExecutionModeContract):
        @pytest.fixture
        def mode(self):
            return MyMode()

and pytest runs every check against ``MyMode``. The checks come in groups
(one module each), switched by capability flags a subclass sets to declare
what its mode does (:data:`~ktrdr_core.testing.contract.capabilities.CAPABILITIES`;
by default a mode promises all of them). Inputs that may vary (seeds, epochs,
when a cancel lands, which update raises, bad names and symbols) are drawn
by hypothesis; class attributes size the runs and the bounds. Every failure
is a :class:`~ktrdr_core.testing.ContractViolation` whose message says what
the mode did, what to change, and — for a capability — the flag and its page.

Each training runs with ``KTRDR_HOME`` pointing at a fresh folder, on a
worker thread (so the suite can cancel it, time it, and give up on a hang).
Nothing here imports torch; the mode does, when it trains.
"""

from __future__ import annotations

from ktrdr_core.testing.contract.bad_input import BadInputChecks
from ktrdr_core.testing.contract.base import ContractBase
from ktrdr_core.testing.contract.cancellation import CancellationChecks
from ktrdr_core.testing.contract.capabilities import CAPABILITIES, Capability
from ktrdr_core.testing.contract.determinism import DeterminismChecks
from ktrdr_core.testing.contract.identity import IdentityChecks
from ktrdr_core.testing.contract.progress import InjectedProgressFailure, ProgressChecks
from ktrdr_core.testing.contract.results import ResultChecks

__all__ = [
    "CAPABILITIES",
    "BadInputChecks",
    "CancellationChecks",
    "Capability",
    "ContractBase",
    "DeterminismChecks",
    "ExecutionModeContract",
    "IdentityChecks",
    "InjectedProgressFailure",
    "ProgressChecks",
    "ResultChecks",
]


class ExecutionModeContract(
    IdentityChecks, ResultChecks, ProgressChecks, CancellationChecks, DeterminismChecks, BadInputChecks
):
    """The contract every execution mode must pass (docs/contract.md).

    Provide a ``mode`` fixture (or set ``mode_factory``). Declare what the mode
    does not do with the capability flags (``deterministic = False``, ...);
    tune with class attributes — the defaults fit the built-in strategies and
    the embedded sample data, and keep each training to a second or two.
    """
