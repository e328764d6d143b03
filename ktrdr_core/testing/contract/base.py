"""What every group of the contract suite shares: the knobs, the fixtures, running a mode.

A group is a mixin of ``test_*`` checks on top of :class:`ContractBase`;
:class:`~ktrdr_core.testing.ExecutionModeContract` combines them all. Class
attributes size the runs and the bounds; the capability flags (documented in
:mod:`ktrdr_core.testing.contract.capabilities`) say which groups apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.testing.checks import (
    CANCELLATION_BOUND_SECONDS,
    CONTRACT_PAGE,
    ContractViolation,
    ModeRun,
    ProgressProbe,
    fail_with,
    fresh_ktrdr_home,
    leftover_model_dirs,
    result_problems,
    run_mode,
    saved_model_problems,
    saves_a_model,
)
from ktrdr_core.testing.contract.capabilities import capability_note

__all__ = ["ContractBase"]


def _add_note(error: BaseException, note: str) -> None:
    """Append ``note`` to a ContractViolation's message (or to each one in a hypothesis group)."""
    if isinstance(error, ContractViolation):
        first = str(error.args[0]) if error.args else ""
        if note not in first:
            error.args = (f"{first}\n{note}", *error.args[1:])
    for inner in getattr(error, "exceptions", ()):
        _add_note(inner, note)


class ContractBase:
    """The contract's shared set-up. Provide a ``mode`` fixture (or set ``mode_factory``)."""

    #: callable returning the mode under test, used when no ``mode`` fixture is defined
    mode_factory: ClassVar[Callable[[], Any] | None] = None

    # -- capabilities: what the mode promises (docs/contract.md#capabilities) -----------------
    installed: ClassVar[bool] = True
    reports_progress: ClassVar[bool] = True
    cancellable_before_start: ClassVar[bool] = True
    cancellable: ClassVar[bool] = True
    cancellable_during_setup: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    stores_models: ClassVar[bool] = True

    # -- the request every check starts from -------------------------------------------------
    strategy: ClassVar[str] = "neuro_mean_reversion"
    symbols: ClassVar[tuple[str, ...]] = ()
    timeframes: ClassVar[tuple[str, ...]] = ()
    #: about 1,500 bars of the 1h sample data: a training of a second or two
    start_date: ClassVar[str | None] = "2023-01-02"
    end_date: ClassVar[str | None] = "2023-03-04"
    #: overrides of every request; the suite adds its own ``epochs`` and ``seed``
    overrides: ClassVar[Mapping[str, Any]] = {}
    #: hypothesis draws ``epochs`` from 1..max_epochs for the schema and progress checks
    max_epochs: ClassVar[int] = 2
    #: a symbol with data, mixed with bad ones in the bad-symbols check (None: bad ones only)
    good_symbol: ClassVar[str | None] = "SYNTH_A"
    #: epochs of the runs the suite cancels: long enough that a cancel lands mid-training
    cancel_epochs: ClassVar[int] = 40
    #: the longest delay (seconds) before cancelling from another thread
    max_cancel_delay: ClassVar[float] = 0.4
    #: the set-up cancels are sent 1 ms to this many seconds after ``execute()`` starts
    max_setup_cancel_delay: ClassVar[float] = 0.05

    # -- bounds --------------------------------------------------------------------------------
    #: from ``token.cancel()`` to ``execute()`` raising CancellationError, judged as the p95 of
    #: ``cancel_samples`` cancels (docs/contract.md#cancellation)
    cancellation_bound_seconds: ClassVar[float] = CANCELLATION_BOUND_SECONDS
    #: how many cancels the latency check times
    cancel_samples: ClassVar[int] = 7
    #: ``health()`` must answer within this (the selector asks before every decision)
    health_bound_seconds: ClassVar[float] = 1.0
    #: a single training that does not end within this is reported as hanging
    run_timeout_seconds: ClassVar[float] = 180.0
    #: after ``token.cancel()``, how long to wait for a mode that ignores it before failing
    cancel_wait_seconds: ClassVar[float] = 30.0
    #: two runs with one seed may differ by at most this in each compared metric
    seed_tolerance: ClassVar[float] = 1e-6

    # -- hypothesis ----------------------------------------------------------------------------
    #: examples per check that runs trainings (each example is one or two real trainings)
    max_examples: ClassVar[int] = 2
    #: examples per bad-input check (these fail fast, so more are cheap)
    bad_input_examples: ClassVar[int] = 6
    #: shrinking re-runs trainings; off by default to keep a failing suite fast
    hypothesis_phases: ClassVar[tuple[Phase, ...]] = (Phase.explicit, Phase.reuse, Phase.generate)
    derandomize: ClassVar[bool] = False

    # -- fixtures and helpers an author may override ------------------------------------------

    @pytest.fixture
    def mode(self) -> Any:
        """The mode under test: override this fixture, or set ``mode_factory``."""
        factory = type(self).mode_factory
        if factory is None:
            pytest.fail(
                f"{type(self).__name__} does not say which mode to test: define a `mode` fixture "
                "returning your mode (or set mode_factory = MyMode) in the class",
                pytrace=False,
            )
        return factory()

    @pytest.fixture
    def contract_request(self) -> TrainingRequest:
        """The valid request the checks vary (epochs and seed are drawn on top of it)."""
        return TrainingRequest(
            strategy=self.strategy,
            user_id="contract-suite",
            symbols=self.symbols,
            timeframes=self.timeframes,
            start_date=self.start_date,
            end_date=self.end_date,
            overrides=dict(self.overrides),
        )

    @contextlib.contextmanager
    def capability(self, name: str) -> Iterator[None]:
        """Run a check of capability ``name``: skipped when undeclared, its failures name the flag."""
        if not getattr(self, name):
            pytest.skip(f"{type(self).__name__} declares {name} = False")
        try:
            yield
        except BaseException as error:
            _add_note(error, capability_note(name))
            raise

    def model_dirs(self, home: Any) -> list[str]:
        """Model folders the mode left in ``home``; override if the mode saves elsewhere."""
        return leftover_model_dirs(home)

    def hypothesis_settings(self, max_examples: int | None = None) -> settings:
        return settings(
            max_examples=max_examples or self.max_examples,
            deadline=None,
            derandomize=self.derandomize,
            phases=self.hypothesis_phases,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            database=None,
        )

    @staticmethod
    def variant(base: TrainingRequest, **changes: Any) -> TrainingRequest:
        """``base`` with ``changes`` (``overrides`` merged) and a fresh request id."""
        data = base.to_dict()
        data.pop("request_id")
        overrides = {**data.pop("overrides"), **changes.pop("overrides", {})}
        return TrainingRequest(**{**data, **changes}, overrides=overrides)

    def wait(self, run: ModeRun, timeout: float | None = None) -> None:
        limit = self.run_timeout_seconds if timeout is None else timeout
        if not run.wait(limit):
            raise ContractViolation(
                f"execute() did not return within {limit:g} s; a training of this "
                "size should take seconds (is it waiting on something that never comes?)"
            )

    def train(
        self, mode: Any, request: TrainingRequest, progress: Callable[..., None] | None = None
    ) -> tuple[ModeRun, list[str]]:
        """Run a valid request to the end in a fresh KTRDR_HOME; ``(run, leftover model dirs)``."""
        probe = progress if progress is not None else ProgressProbe()
        with fresh_ktrdr_home() as home:
            run = run_mode(mode, request, probe, ThreadingCancellationToken())
            self.wait(run)
            dirs = self.model_dirs(home)
            if run.error is None:
                run.result_problems = result_problems(run.result, request, expect_model=False)
                run.model_problems = saved_model_problems(run.result) if saves_a_model(request) else []
        return run, dirs

    def expect_success(self, run: ModeRun, request: TrainingRequest, what: str) -> TrainingResult:
        if run.error is not None:
            raise ContractViolation(
                f"{what}: execute() raised {type(run.error).__name__}: {run.error} for a valid request "
                f"({request.strategy!r}, overrides {dict(request.overrides)})"
            ) from run.error
        problems = run.result_problems
        if problems is None:
            problems = result_problems(run.result, request, expect_model=False)
        fail_with(problems, f"{what}: the result breaks the result contract ({CONTRACT_PAGE}#results)")
        return run.result

    _warmed: ClassVar[set[tuple[str, str]]] = set()

    def warm_up(self, mode: Any, request: TrainingRequest) -> None:
        """One short training per mode class and process before cancellations are timed.

        A mode imports its engine (torch) on its first ``execute`` — by design, to keep
        ``ktrdr plugins`` fast — and that one-off cost is not held against the bound.
        """
        key = (type(mode).__module__, type(mode).__qualname__)
        if key in ContractBase._warmed:
            return
        warm = self.variant(request, overrides={"epochs": 1, "save_model": False})
        with fresh_ktrdr_home():
            self.wait(run_mode(mode, warm, ProgressProbe(), ThreadingCancellationToken()))
        ContractBase._warmed.add(key)
