"""Checks on cancellation: before start, in set-up, mid-training, how fast (docs/contract.md#cancellation).

Each cancel is judged for what the mode did (raised ``CancellationError``,
left no model folder, did not run on regardless). The latency bound is judged
once, over ``cancel_samples`` cancels: their 95th percentile, so one cancel
that a loaded machine delays cannot fail a mode whose cancels are prompt.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import CancellationError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.testing.checks import (
    CANCELLATION_PERCENTILE,
    CONTRACT_PAGE,
    ContractViolation,
    ProgressProbe,
    fail_with,
    fresh_ktrdr_home,
    percentile,
    run_mode,
)
from ktrdr_core.testing.contract.base import ContractBase
from ktrdr_core.testing.contract.results import SEEDS

__all__ = ["CancellationChecks", "CancelOutcome"]

REASON = "cancelled by the contract suite"


@attrs.frozen
class CancelOutcome:
    """One judged cancel: ``latency`` from ``token.cancel()`` to the raise, None if it ended first."""

    latency: float | None
    updates: int


class CancellationChecks(ContractBase):
    def cancel_once(
        self,
        mode: Any,
        request: TrainingRequest,
        *,
        delay: float | None = None,
        at_update: int | None = None,
        once_training: bool = False,
    ) -> CancelOutcome:
        """Cancel after ``delay`` s (another thread; 0: before start) or at progress update ``at_update``.

        ``once_training``: count ``delay`` from the first progress update (the
        training has begun) rather than from the call. Raises ContractViolation
        for what the mode did wrong, except a slow raise: the latency is returned
        for :meth:`test_cancellation_is_within_the_bound`.
        """
        self.warm_up(mode, request)
        token = ThreadingCancellationToken()
        training = threading.Event()
        if at_update is not None:

            def on_update(index: int) -> None:
                if index == at_update:
                    token.cancel(reason=REASON)

            probe = ProgressProbe(on_update)
            when = f"at progress update {at_update}"
        else:
            probe = ProgressProbe(lambda index: training.set())
            start = "the first progress update" if once_training else "execute() started"
            when = f"{delay:.3f} s after {start}"
        with fresh_ktrdr_home() as home:
            if delay == 0:
                token.cancel(reason=REASON)
                when = "before execute() was called"
            run = run_mode(mode, request, probe, token)
            if once_training:  # (bounded: a mode that never reports is judged by the run timeout)
                deadline = time.monotonic() + self.run_timeout_seconds
                while not training.wait(0.01) and not run.finished and time.monotonic() < deadline:
                    pass
            if delay:
                time.sleep(delay)
                if not run.finished:
                    token.cancel(reason=REASON)
            if not run.wait(self.cancel_wait_seconds if token.is_cancelled() else self.run_timeout_seconds):
                raise ContractViolation(
                    f"cancelled {when}: execute() was still running {self.cancel_wait_seconds:g} s after "
                    "token.cancel(); check cancel.is_cancelled() at every batch and raise "
                    "ktrdr_core.CancellationError"
                )
            dirs = self.model_dirs(home)
        cancelled_at = token.cancelled_at
        assert run.ended_at is not None
        updates = len(probe.calls)
        if cancelled_at is None or run.ended_at <= cancelled_at:
            # the training ended before the cancel came: nothing to judge but the result
            self.expect_success(run, request, "a training that ended before the cancel")
            return CancelOutcome(latency=None, updates=updates)
        latency = run.ended_at - cancelled_at
        if isinstance(run.error, CancellationError):
            problems = []
            if dirs:
                problems.append(
                    f"the cancelled run left model folder(s) behind: {', '.join(dirs)}; write the model "
                    "into a temporary folder and rename it into place only when it is complete "
                    "(ktrdr_core.training.storage.save_model does), and remove the temporary on any error"
                )
            fail_with(problems, f"cancelled {when}")
            return CancelOutcome(latency=latency, updates=updates)
        if run.error is not None:
            raise ContractViolation(
                f"cancelled {when}: execute() raised {type(run.error).__name__}: {run.error}; a cancelled "
                "training must raise ktrdr_core.CancellationError(token.reason)"
            ) from run.error
        result = run.result
        if isinstance(result, TrainingResult) and result.success:
            if latency <= self.cancellation_bound_seconds:
                return CancelOutcome(latency=None, updates=updates)  # it was finishing as the cancel came
            raise ContractViolation(
                f"cancelled {when}: execute() ignored the cancellation — it kept running "
                f"{latency:.2f} s after token.cancel() and returned success; check "
                "cancel.is_cancelled() at every batch and raise ktrdr_core.CancellationError"
            )
        status = result.status if isinstance(result, TrainingResult) else type(result).__name__
        raise ContractViolation(
            f"cancelled {when}: execute() returned ({status}) instead of raising; a cancelled training "
            "must raise ktrdr_core.CancellationError(token.reason)"
        )

    def test_cancelled_before_start(self, mode: Any, contract_request: TrainingRequest) -> None:
        with self.capability("cancellable_before_start"):
            request = self.variant(contract_request, overrides={"seed": 1, "epochs": self.cancel_epochs})
            outcome = self.cancel_once(mode, request, delay=0)
            if outcome.updates:
                raise ContractViolation(
                    f"cancelled before execute() was called, the mode still sent {outcome.updates} progress "
                    "update(s): check the token before any work and raise ktrdr_core.CancellationError"
                )

    def test_cancellation_from_another_thread(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(delay=st.floats(0.001, self.max_cancel_delay), seed=SEEDS)
        def check(delay: float, seed: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.cancel_epochs})
            self.cancel_once(mode, request, delay=delay)

        with self.capability("cancellable"):
            check()

    def test_cancellation_at_a_progress_update(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(at_update=st.integers(1, 3), seed=SEEDS)
        def check(at_update: int, seed: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.cancel_epochs})
            self.cancel_once(mode, request, at_update=at_update)

        with self.capability("reports_progress"), self.capability("cancellable"):
            check()

    def timed_cancels(
        self, mode: Any, contract_request: TrainingRequest, first: float, last: float, *, once_training: bool
    ) -> list[float]:
        """The latencies of ``cancel_samples`` cancels sent ``first``..``last`` s in (those that landed)."""
        samples = max(1, self.cancel_samples)
        latencies: list[float] = []
        for index in range(samples):
            delay = first + (last - first) * index / max(1, samples - 1)
            request = self.variant(contract_request, overrides={"seed": index, "epochs": self.cancel_epochs})
            outcome = self.cancel_once(mode, request, delay=delay, once_training=once_training)
            if outcome.latency is not None:
                latencies.append(outcome.latency)
        if len(latencies) < (samples + 1) // 2:
            raise ContractViolation(
                f"only {len(latencies)} of {samples} cancels landed before the training ended, too "
                f"few to judge; raise cancel_epochs (now {self.cancel_epochs}) so a training outlasts "
                f"the {last:g} s delay of the last cancel"
            )
        return latencies

    def judge_latencies(self, latencies: list[float], when: str, advice: str) -> None:
        """Fail when the p95 of ``latencies`` (cancels sent ``when``) is over the bound."""
        bound = self.cancellation_bound_seconds
        judged = percentile(latencies, CANCELLATION_PERCENTILE)
        if judged > bound:
            each = ", ".join(f"{latency * 1000:.0f}" for latency in sorted(latencies))
            raise ContractViolation(
                f"execute() raised CancellationError {judged * 1000:.0f} ms after token.cancel() at the "
                f"{CANCELLATION_PERCENTILE * 100:.0f}th percentile of {len(latencies)} cancels sent {when} "
                f"(each, ms: {each}); the bound is {bound * 1000:.0f} ms "
                f"({CONTRACT_PAGE}#cancellation): {advice}"
            )

    def test_cancellation_is_within_the_bound(self, mode: Any, contract_request: TrainingRequest) -> None:
        """``cancel_samples`` cancels from another thread while the mode trains; their p95.

        The delays are spread over 0..max_cancel_delay from the first progress
        update (from the call when the mode reports no progress): the bound is a
        training's, where a mode checks at every batch.
        """
        with self.capability("cancellable"):
            start = "the first progress update" if self.reports_progress else "execute() started"
            latencies = self.timed_cancels(
                mode, contract_request, 0.01, self.max_cancel_delay, once_training=self.reports_progress
            )
            self.judge_latencies(
                latencies,
                f"0.01-{self.max_cancel_delay:g} s after {start}",
                "check cancel.is_cancelled() more often (at every batch, and between steps)",
            )

    def test_setup_cancellation_is_within_the_bound(
        self, mode: Any, contract_request: TrainingRequest
    ) -> None:
        """``cancel_samples`` cancels sent 1 ms..max_setup_cancel_delay after ``execute()`` starts; their p95.

        That is while a mode sets up (strategy, data, indicators, features),
        where one long unchecked step holds a cancel however often training
        checks.
        """
        with self.capability("cancellable"), self.capability("cancellable_during_setup"):
            latencies = self.timed_cancels(
                mode, contract_request, 0.001, self.max_setup_cancel_delay, once_training=False
            )
            self.judge_latencies(
                latencies,
                f"0.001-{self.max_setup_cancel_delay:g} s after execute() started (during set-up)",
                "check cancel.is_cancelled() between the units of set-up work too (per file, per "
                "series, per indicator), not only between steps",
            )
