"""Checks on progress updates and on a progress callback that fails (docs/contract.md#progress-updates)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.testing.checks import ContractViolation, ProgressProbe, fail_with
from ktrdr_core.testing.contract.base import ContractBase
from ktrdr_core.testing.contract.results import SEEDS

__all__ = ["CALLBACK_ERRORS", "InjectedProgressFailure", "ProgressChecks"]

CALLBACK_ERRORS = st.sampled_from([RuntimeError, ValueError, KeyError, ZeroDivisionError, OSError])


class InjectedProgressFailure(Exception):
    """Marker mixed into the exceptions the suite's progress callback raises on purpose."""


class ProgressChecks(ContractBase):
    def test_progress_follows_the_callback_contract(
        self, mode: Any, contract_request: TrainingRequest
    ) -> None:
        @self.hypothesis_settings()
        @given(seed=SEEDS, epochs=st.integers(1, max(1, self.max_epochs)))
        @example(seed=7, epochs=max(1, self.max_epochs))  # always one run with several epochs
        def check(seed: int, epochs: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": epochs})
            probe = ProgressProbe()
            run, _ = self.train(mode, request, probe)
            # the callback's problems first: a wrong signature often breaks the result too
            fail_with(
                probe.final_problems(run.result, request),
                f"progress updates break the contract (seed {seed}, epochs {epochs})",
            )
            self.expect_success(run, request, f"seed {seed}, epochs {epochs}")

        with self.capability("reports_progress"):
            check()

    def test_a_raising_progress_callback_does_not_kill_the_training(
        self, mode: Any, contract_request: TrainingRequest
    ) -> None:
        @self.hypothesis_settings()
        @given(error=CALLBACK_ERRORS, from_update=st.integers(1, 3), seed=SEEDS)
        def check(error: type[Exception], from_update: int, seed: int) -> None:
            failure = type(f"Injected{error.__name__}", (error, InjectedProgressFailure), {})

            def on_update(index: int) -> None:
                if index >= from_update:
                    raise failure("progress sink failure injected by the contract suite")

            request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.max_epochs})
            run, _ = self.train(mode, request, ProgressProbe(on_update))
            what = f"the progress callback raised {error.__name__} from update {from_update} on"
            if isinstance(run.error, InjectedProgressFailure):
                raise ContractViolation(
                    f"{what}, and execute() let it escape: a failing progress consumer must not kill the "
                    "training; wrap each progress(...) call, log the error once, and carry on"
                )
            if isinstance(run.result, TrainingResult) and not run.result.success:
                raise ContractViolation(
                    f"{what}, and execute() returned a failed result "
                    f"({run.result.error!r}); log the callback's error and carry on"
                )
            self.expect_success(run, request, what)

        with self.capability("reports_progress"):
            check()
