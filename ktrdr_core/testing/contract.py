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

and pytest runs every check below against ``MyMode``. Inputs that may vary
(seeds, epochs, when a cancel lands, which update raises, bad strategy names
and symbols) are drawn by hypothesis; class attributes size the runs and the
bounds. Every failure is a :class:`~ktrdr_core.testing.ContractViolation`
whose message says what the mode did and what to change.

Each training runs with ``KTRDR_HOME`` pointing at a fresh folder, on a
worker thread (so the suite can cancel it, time it, and give up on a hang).
Nothing here imports torch; the mode does, when it trains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import CancellationError, KtrdrError
from ktrdr_core.modes import ModeHealth
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.settings import MODE_NAME_PATTERN
from ktrdr_core.testing.checks import (
    CONTRACT_PAGE,
    ContractViolation,
    ModeRun,
    ProgressProbe,
    fail_with,
    fresh_ktrdr_home,
    leftover_model_dirs,
    result_problems,
    run_mode,
)

__all__ = ["ExecutionModeContract", "InjectedProgressFailure"]

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
CALLBACK_ERRORS = st.sampled_from([RuntimeError, ValueError, KeyError, ZeroDivisionError, OSError])
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


class InjectedProgressFailure(Exception):
    """Marker mixed into the exceptions the suite's progress callback raises on purpose."""


class ExecutionModeContract:
    """The contract every execution mode must pass (docs/contract.md).

    Provide a ``mode`` fixture (or set ``mode_factory``). Tune with class
    attributes; the defaults fit the built-in strategies and the embedded
    sample data, and keep each training to a second or two.
    """

    #: callable returning the mode under test, used when no ``mode`` fixture is defined
    mode_factory: ClassVar[Callable[[], Any] | None] = None

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
    #: the longest delay (seconds) hypothesis may draw before cancelling from another thread
    max_cancel_delay: ClassVar[float] = 0.4

    # -- bounds --------------------------------------------------------------------------------
    #: from ``token.cancel()`` to ``execute()`` raising CancellationError (docs/contract.md: 100 ms)
    cancellation_bound_seconds: ClassVar[float] = 0.1
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
                run.result_problems = result_problems(run.result, request)
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
        fail_with(problems, f"{what}: the result breaks the result contract ({CONTRACT_PAGE}, 'Results')")
        return run.result

    # -- the checks ----------------------------------------------------------------------------

    def test_mode_has_a_name(self, mode: Any) -> None:
        name = getattr(mode, "name", None)
        if not isinstance(name, str) or not MODE_NAME_PATTERN.match(name):
            raise ContractViolation(
                f"the mode's `name` is {name!r}; give it a short name such as 'cloud' (letters, digits, "
                "'.', '_', '-'): it is what KTRDR_ROLLOUT_CANDIDATE and --mode refer to"
            )
        for method in ("health", "execute"):
            if not callable(getattr(mode, method, None)):
                raise ContractViolation(f"the mode has no {method}() method (ktrdr_core.ExecutionMode)")

    def test_health_answers_quickly_with_a_mode_health(self, mode: Any) -> None:
        bound = self.health_bound_seconds
        for attempt in (1, 2):  # the selector asks before every decision, not only once
            answer: dict[str, Any] = {}

            def ask(answer: dict[str, Any] = answer) -> None:
                try:
                    answer["health"] = mode.health()
                except BaseException as exc:  # noqa: BLE001
                    answer["error"] = exc

            started = time.monotonic()
            thread = threading.Thread(target=ask, daemon=True)
            thread.start()
            thread.join(bound)
            took = time.monotonic() - started
            if thread.is_alive():
                raise ContractViolation(
                    f"health() did not answer within {bound:g} s (call {attempt}); the selector asks it "
                    "before every decision: answer from cached state and bound any network probe"
                )
            if "error" in answer:
                error = answer["error"]
                raise ContractViolation(
                    f"health() raised {type(error).__name__}: {error}; return "
                    "ModeHealth.unhealthy(reason) instead"
                ) from error
            health = answer["health"]
            if not isinstance(health, ModeHealth):
                raise ContractViolation(
                    f"health() returned {health!r}, not a ktrdr_core.ModeHealth; return "
                    "ModeHealth.ok() or ModeHealth.unhealthy('why')"
                )
            if not health.healthy:
                raise ContractViolation(
                    f"health() says the mode is unhealthy ({health.detail}); the contract suite trains "
                    "with it, so the test environment must provide what the mode needs"
                )
            if took > bound:
                raise ContractViolation(
                    f"health() took {took:.2f} s (call {attempt}); the bound is {bound:g} s"
                )

    def test_result_has_the_contract_schema(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(seed=SEEDS, epochs=st.integers(1, max(1, self.max_epochs)))
        @example(seed=7, epochs=max(1, self.max_epochs))  # always one run with several epochs
        def check(seed: int, epochs: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": epochs})
            run, _ = self.train(mode, request)
            self.expect_success(run, request, f"seed {seed}, epochs {epochs}")

        check()

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

        check()

    _warmed: ClassVar[set[tuple[str, str]]] = set()

    def warm_up(self, mode: Any, request: TrainingRequest) -> None:
        """One short training per mode class and process before cancellations are timed.

        A mode imports its engine (torch) on its first ``execute`` — by design, to keep
        ``ktrdr plugins`` fast — and that one-off cost is not held against the bound.
        """
        key = (type(mode).__module__, type(mode).__qualname__)
        if key in ExecutionModeContract._warmed:
            return
        warm = self.variant(request, overrides={"epochs": 1, "save_model": False})
        with fresh_ktrdr_home():
            self.wait(run_mode(mode, warm, ProgressProbe(), ThreadingCancellationToken()))
        ExecutionModeContract._warmed.add(key)

    def _cancel_and_judge(
        self, mode: Any, request: TrainingRequest, *, delay: float | None = None, at_update: int | None = None
    ) -> None:
        """Cancel after ``delay`` s (another thread) or at progress update ``at_update`` (the mode's)."""
        self.warm_up(mode, request)
        token = ThreadingCancellationToken()
        reason = "cancelled by the contract suite"
        if at_update is not None:

            def on_update(index: int) -> None:
                if index == at_update:
                    token.cancel(reason=reason)

            probe = ProgressProbe(on_update)
            when = f"at progress update {at_update}"
        else:
            probe = ProgressProbe()
            when = f"{delay:.3f} s after execute() started"
        with fresh_ktrdr_home() as home:
            if delay == 0:
                token.cancel(reason=reason)
                when = "before execute() was called"
            run = run_mode(mode, request, probe, token)
            if delay:
                time.sleep(delay)
                if not run.finished:
                    token.cancel(reason=reason)
            if not run.wait(self.cancel_wait_seconds if token.is_cancelled() else self.run_timeout_seconds):
                raise ContractViolation(
                    f"cancelled {when}: execute() was still running {self.cancel_wait_seconds:g} s after "
                    "token.cancel(); check cancel.is_cancelled() at every batch and raise "
                    "ktrdr_core.CancellationError"
                )
            dirs = self.model_dirs(home)
        cancelled_at = token.cancelled_at
        assert run.ended_at is not None
        if cancelled_at is None or run.ended_at <= cancelled_at:
            # the training ended before the cancel came: nothing to judge but the result
            self.expect_success(run, request, "a training that ended before the cancel")
            return
        latency = run.ended_at - cancelled_at
        bound = self.cancellation_bound_seconds
        if isinstance(run.error, CancellationError):
            problems = []
            if latency > bound:
                problems.append(
                    f"execute() raised CancellationError {latency * 1000:.0f} ms after token.cancel(); the "
                    f"bound is {bound * 1000:.0f} ms ({CONTRACT_PAGE}, 'Cancellation'): check "
                    "cancel.is_cancelled() more often (at every batch, and between steps)"
                )
            if dirs:
                problems.append(
                    f"the cancelled run left model folder(s) behind: {', '.join(dirs)}; write the model "
                    "into a temporary folder and rename it into place only when it is complete "
                    "(ktrdr_core.training.storage.save_model does), and remove the temporary on any error"
                )
            fail_with(problems, f"cancelled {when}")
            return
        if run.error is not None:
            raise ContractViolation(
                f"cancelled {when}: execute() raised {type(run.error).__name__}: {run.error}; a cancelled "
                "training must raise ktrdr_core.CancellationError(token.reason)"
            ) from run.error
        result = run.result
        if isinstance(result, TrainingResult) and result.success:
            if latency <= bound:
                return  # it was finishing as the cancel came: a completed training is fine
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
        request = self.variant(contract_request, overrides={"seed": 1, "epochs": self.cancel_epochs})
        self._cancel_and_judge(mode, request, delay=0)

    def test_cancellation_from_another_thread(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(delay=st.floats(0.001, self.max_cancel_delay), seed=SEEDS)
        def check(delay: float, seed: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.cancel_epochs})
            self._cancel_and_judge(mode, request, delay=delay)

        check()

    def test_cancellation_at_a_progress_update(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings()
        @given(at_update=st.integers(1, 3), seed=SEEDS)
        def check(at_update: int, seed: int) -> None:
            request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.cancel_epochs})
            self._cancel_and_judge(mode, request, at_update=at_update)

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

        check()

    def test_the_same_seed_gives_the_same_metrics(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings(max_examples=1)
        @given(seed=SEEDS)
        def check(seed: int) -> None:
            results = []
            for _ in range(2):
                request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.max_epochs})
                run, _ = self.train(mode, request)
                results.append(self.expect_success(run, request, f"seed {seed}"))
            first, second = results
            problems = []
            for section, key in (
                ("training_metrics", "val_loss"),
                ("training_metrics", "val_accuracy"),
                ("training_metrics", "epochs_trained"),
                ("test_metrics", "test_loss"),
                ("test_metrics", "test_accuracy"),
            ):
                a = getattr(first, section).get(key)
                b = getattr(second, section).get(key)
                if not (
                    isinstance(a, (int, float))
                    and isinstance(b, (int, float))
                    and abs(a - b) <= self.seed_tolerance
                ):
                    problems.append(f"{section}.{key}: {a!r} vs {b!r}")
            fail_with(
                problems,
                f"two runs with seed {seed} gave different metrics (tolerance "
                f"{self.seed_tolerance:g}); seed every random source — weights, batch order, "
                "dropout, any random split — from overrides['seed']",
            )

        check()

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
