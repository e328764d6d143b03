"""Checks that a request which cannot work fails with a clear error (docs/contract.md#the-mode).

Not a capability: every mode meets bad input, and a traceback is never the answer.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import CancellationError, KtrdrError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.testing.checks import ContractViolation, ProgressProbe, fail_with, fresh_ktrdr_home, run_mode
from ktrdr_core.testing.contract.base import ContractBase

__all__ = ["MALFORMED_SYMBOLS", "PATH_LIKE_STRATEGIES", "BadInputChecks"]

PATH_LIKE_STRATEGIES = [
    "../neuro_mean_reversion",
    "/etc/passwd",
    "strategies/neuro_mean_reversion",
    "neuro_mean_reversion.yaml",
    "..",
    "",
    " neuro_mean_reversion",
    "a b",
]
MALFORMED_SYMBOLS = ["", "../etc", "A B", "a/b", "SYNTH_A;rm"]


class BadInputChecks(ContractBase):
    def _judge_bad_request(self, mode: Any, request: TrainingRequest, what: str, named: list[str]) -> None:
        with fresh_ktrdr_home() as home:
            run = run_mode(mode, request, ProgressProbe(), ThreadingCancellationToken())
            self.wait(run)
            dirs = self.model_dirs(home)
        if isinstance(run.error, KtrdrError) and not isinstance(run.error, CancellationError):
            message = str(run.error)
        elif run.error is not None:
            raise ContractViolation(
                f"{what}: execute() crashed with {type(run.error).__name__}: {run.error}; raise "
                "ktrdr_core.BadInputError (a KtrdrError) with a message that names the bad value, or "
                "return TrainingResult.failed(message)"
            ) from run.error
        elif isinstance(run.result, TrainingResult) and not run.result.success:
            message = run.result.error or ""
        else:
            raise ContractViolation(
                f"{what}: execute() {run.describe_outcome()}; a request that cannot "
                "work must fail with a clear error (ktrdr_core.BadInputError)"
            )
        problems = []
        if not message.strip():
            problems.append("the error has no message; say what is wrong and what to use instead")
        elif named and not any(
            (value.strip() and value in message) or repr(value) in message for value in named
        ):
            problems.append(
                f"the error does not name the bad value ({', '.join(map(repr, named))}): "
                f"{message!r}; name it so the user knows what to fix"
            )
        if dirs:
            problems.append(f"the failed run left model folder(s) behind: {', '.join(dirs)}")
        fail_with(problems, what)

    def test_an_unknown_or_unsafe_strategy_is_a_clear_error(
        self, mode: Any, contract_request: TrainingRequest
    ) -> None:
        unknown = st.from_regex(r"\A[a-z][a-z0-9_]{0,12}\Z").map(lambda s: f"no_such_strategy_{s}")

        @self.hypothesis_settings(max_examples=self.bad_input_examples)
        @given(strategy=st.one_of(unknown, st.sampled_from(PATH_LIKE_STRATEGIES)))
        def check(strategy: str) -> None:
            request = self.variant(contract_request, strategy=strategy, overrides={"epochs": 1})
            self._judge_bad_request(mode, request, f"strategy {strategy!r}", [strategy])

        check()

    def test_unknown_or_malformed_symbols_are_a_clear_error(
        self, mode: Any, contract_request: TrainingRequest
    ) -> None:
        unknown = st.from_regex(r"\A[A-Z]{2,6}\Z").map(lambda s: f"NOSUCH{s}")
        bad = st.one_of(unknown, st.sampled_from(MALFORMED_SYMBOLS))

        @self.hypothesis_settings(max_examples=self.bad_input_examples)
        @given(symbols=st.lists(bad, min_size=1, max_size=2, unique=True), keep_a_good_one=st.booleans())
        def check(symbols: list[str], keep_a_good_one: bool) -> None:
            good = [self.good_symbol] if keep_a_good_one and self.good_symbol else []
            request = self.variant(contract_request, symbols=tuple(good + symbols), overrides={"epochs": 1})
            self._judge_bad_request(mode, request, f"symbols {good + symbols!r}", symbols)

        check()
