"""Checks on what a training returns: the result schema and the saved model (docs/contract.md#results)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ktrdr_core.request import TrainingRequest
from ktrdr_core.testing.checks import fail_with
from ktrdr_core.testing.contract.base import ContractBase

__all__ = ["SEEDS", "ResultChecks"]

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


class ResultChecks(ContractBase):
    def test_result_has_the_contract_schema(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(seed=SEEDS, epochs=st.integers(1, max(1, self.max_epochs)))
        @example(seed=7, epochs=max(1, self.max_epochs))  # always one run with several epochs
        def check(seed: int, epochs: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": epochs})
            run, _ = self.train(mode, request)
            self.expect_success(run, request, f"seed {seed}, epochs {epochs}")

        check()

    def test_a_saved_model_is_a_complete_folder(self, mode: Any, contract_request: TrainingRequest) -> None:
        with self.capability("stores_models"):
            request = self.variant(contract_request, overrides={"seed": 11, "epochs": 1})
            run, _ = self.train(mode, request)
            self.expect_success(run, request, "a run that saves its model")
            fail_with(run.model_problems or [], "a run that saves its model (save_model not false)")
