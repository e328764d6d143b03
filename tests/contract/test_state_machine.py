"""The manager state machine passes a correct mode and catches what breaks its invariants."""

from __future__ import annotations

from typing import Any

import pytest
from broken_modes import FailingMode
from hypothesis.stateful import run_state_machine_as_test

from ktrdr_core import Decision, bucket_for, hookimpl
from ktrdr_core.testing import ContractViolation, ManagerStateMachine, QuickMode, manager_state_machine


def run(machine: type[ManagerStateMachine]) -> None:
    run_state_machine_as_test(machine, settings=machine.hypothesis_settings())


def test_a_mode_that_fails_valid_requests_is_caught() -> None:
    machine = manager_state_machine(FailingMode, max_examples=2, steps=3)
    with pytest.raises(
        ContractViolation, match=r"failed: RuntimeError: the GPU driver went away; a valid request must train"
    ):
        run(machine)


class AlwaysTheControl:
    """A selector that ignores the rollout: every user stays on the control mode."""

    @hookimpl(tryfirst=True)
    def select_mode(self, request: Any, policy: Any, modes: Any) -> Decision:
        return Decision(
            mode=policy.control,
            reason="never roll out",
            bucket=bucket_for(request.user_id),
            user_id=request.user_id,
        )


def test_a_decision_that_disagrees_with_the_rollout_is_caught() -> None:
    machine = manager_state_machine(QuickMode, extra_plugins=(AlwaysTheControl,), max_examples=3, steps=4)
    with pytest.raises(
        ContractViolation,
        match=r"got mode 'contract-control' but the rollout in force "
        r"\(enabled=True, percentage=100.*\) gives 'quick': never roll out",
    ):
        run(machine)


def test_subclassing_works_and_a_missing_mode_is_explained() -> None:
    class NoMode(ManagerStateMachine):
        pass

    with pytest.raises(ContractViolation, match="set mode_factory to the mode under test"):
        NoMode()

    class Quick(ManagerStateMachine):
        mode_factory = QuickMode
        max_examples = 3
        steps = 6

    run(Quick)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="max_exampels"):
        manager_state_machine(QuickMode, max_exampels=3)
