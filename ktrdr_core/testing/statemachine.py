"""A hypothesis state machine driving the TrainingManager with a plugin's mode.

It starts trainings (on threads and through ``train_async``), cancels them
(the token, or the awaiting asyncio task), waits for them, and changes the
rollout between steps, then checks the manager's invariants:

- every request reaches exactly one terminal state (success, error or
  cancelled), seen by a lifecycle observer plugin, and the same one the
  caller got back;
- the active-session count never exceeds the trainings in flight and returns
  to zero once all have ended;
- each decision agrees with the rollout policy in force when the request was
  made (``bucket_for(user) < percentage``, the rollback list, the flag);
- only a request someone cancelled ends cancelled, and a valid request does
  not fail.

An author runs it against a mode in two lines::

    from ktrdr_core.testing import manager_state_machine
    TestMyModeInTheManager = manager_state_machine(MyMode).TestCase

The mode under test is the rollout's candidate; a :class:`QuickMode` is the
control. Real trainings are slow, so the defaults keep runs few and short
(``max_examples``, ``steps``; the request trains one epoch and saves nothing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from ktrdr_core import builtin
from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.manager import TrainingManager
from ktrdr_core.plugins import KtrdrPluginManager
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.bucket import bucket_for
from ktrdr_core.rollout.policy import Decision, RolloutPolicy
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.testing.checks import ContractViolation
from ktrdr_core.testing.helpers import ModeProvider
from ktrdr_core.testing.modes import QuickMode

__all__ = ["LifecycleLog", "ManagerStateMachine", "manager_state_machine"]

TERMINAL = ("success", "error", "cancelled")


class LifecycleLog:
    """A lifecycle-observer plugin that records starts and ends by request id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, Decision] = {}
        self.finished: dict[str, list[str]] = {}
        self.started_events: dict[str, threading.Event] = {}

    def expect(self, request_id: str) -> threading.Event:
        with self.lock:
            return self.started_events.setdefault(request_id, threading.Event())

    @hookimpl
    def training_started(self, request: TrainingRequest, decision: Decision) -> None:
        with self.lock:
            self.started[request.request_id] = decision
            event = self.started_events.setdefault(request.request_id, threading.Event())
        event.set()

    @hookimpl
    def training_finished(
        self, request: TrainingRequest, decision: Decision, result: TrainingResult, report: Any
    ) -> None:
        with self.lock:
            self.finished.setdefault(request.request_id, []).append(result.status)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.started), sum(len(v) for v in self.finished.values())


@attrs.define
class _Training:
    request: TrainingRequest
    token: ThreadingCancellationToken
    expected_mode: str
    via: str
    future: concurrent.futures.Future[TrainingResult] | None = None
    thread: threading.Thread | None = None
    result: TrainingResult | None = None
    error: BaseException | None = None
    cancel_requested: bool = False

    def done(self) -> bool:
        if self.future is not None:
            return self.future.done()
        return self.thread is not None and not self.thread.is_alive()


def expected_mode(rollout: RolloutSettings, user_id: str) -> str:
    """The rollout rule (README, "Rollout settings"), restated independently of RolloutPolicy.decide."""
    if user_id in rollout.excluded_users or not rollout.enabled:
        return rollout.control
    if rollout.percentage >= 100 or bucket_for(user_id) < rollout.percentage:
        return rollout.candidate
    return rollout.control


class _SettingsAwareTestCase:
    """Like hypothesis' ``TestCase`` property, but with the machine's own settings."""

    def __get__(self, obj: Any, owner: type[ManagerStateMachine] | None = None) -> Any:
        machine = type(obj) if obj is not None else owner
        assert machine is not None
        case = machine._to_test_case()
        case.settings = machine.hypothesis_settings()
        return case


class ManagerStateMachine(RuleBasedStateMachine):
    """Start / cancel / complete / rollout-change sequences against the TrainingManager.

    Subclass it (set ``mode_factory``) or use :func:`manager_state_machine`.
    """

    #: returns the mode under test (the rollout's candidate)
    mode_factory: ClassVar[Callable[[], Any] | None] = None
    #: returns the control mode; a fast QuickMode by default
    control_factory: ClassVar[Callable[[], Any]] = staticmethod(lambda: QuickMode("contract-control"))
    users: ClassVar[tuple[str, ...]] = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")
    #: the request every training makes (``user_id`` is drawn)
    request_fields: ClassVar[Mapping[str, Any]] = {
        "strategy": "neuro_mean_reversion",
        "start_date": "2023-01-02",
        "end_date": "2023-03-04",
        "overrides": {"epochs": 1, "seed": 7, "save_model": False},
    }
    #: how long a training may take to start, and to end once awaited
    start_timeout_seconds: ClassVar[float] = 30.0
    end_timeout_seconds: ClassVar[float] = 120.0
    #: factories of more plugins to register (your progress sinks, cancellation sources, ...)
    extra_plugins: ClassVar[tuple[Callable[[], object], ...]] = ()
    max_examples: ClassVar[int] = 3
    steps: ClassVar[int] = 10
    #: shrinking replays step sequences (real trainings); add Phase.shrink for minimal failures
    phases: ClassVar[tuple[Phase, ...]] = (Phase.explicit, Phase.reuse, Phase.generate)

    TestCase = _SettingsAwareTestCase()

    @classmethod
    def hypothesis_settings(cls) -> settings:
        return settings(
            max_examples=cls.max_examples,
            stateful_step_count=cls.steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=cls.phases,
        )

    trainings = Bundle("trainings")

    def __init__(self) -> None:
        super().__init__()
        mode_factory: Callable[[], Any] | None = getattr(type(self), "mode_factory", None)
        if mode_factory is None:
            raise ContractViolation(
                f"{type(self).__name__}: set mode_factory to the mode under test, or "
                "use manager_state_machine(MyMode)"
            )
        # Hypothesis peeks at sys.modules["numpy"] while drawing; a mode importing numpy
        # for the first time on a training thread would let it see a half-imported module.
        with contextlib.suppress(ImportError):
            importlib.import_module("numpy")
        mode, control = mode_factory(), type(self).control_factory()
        self.log = LifecycleLog()
        pm = KtrdrPluginManager()
        pm.register_checked(builtin, name="ktrdr-core", distribution="ktrdr-core", version="contract")
        pm.register_checked(
            ModeProvider(mode, control),
            name="modes-under-test",
            distribution="modes-under-test",
            version="contract",
        )
        pm.register(self.log, name="lifecycle-log")
        for index, factory in enumerate(self.extra_plugins):
            pm.register(factory(), name=f"extra-plugin-{index}")
        self.rollout = RolloutSettings(enabled=True, percentage=50, control=control.name, candidate=mode.name)
        self.manager = TrainingManager(pm, policy_provider=lambda: RolloutPolicy(settings=self.rollout))
        self.runs: dict[str, _Training] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    # -- plumbing ------------------------------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(
                target=self._loop.run_forever, daemon=True, name="contract-event-loop"
            )
            self._loop_thread.start()
        return self._loop

    def _wait_for_end(self, run: _Training) -> None:
        rid = run.request.request_id
        deadline = time.monotonic() + self.end_timeout_seconds
        if run.future is not None:
            try:
                run.result = run.future.result(timeout=self.end_timeout_seconds)
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                pass  # the awaiting task was cancelled; the observers still see the outcome
            except concurrent.futures.TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001
                run.error = exc
        elif run.thread is not None:
            run.thread.join(self.end_timeout_seconds)
        # training_finished is the last thing train() does; a cancelled awaiting task
        # returns to its caller before the training behind it has stopped
        while rid not in self.log.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        if rid not in self.log.finished:
            raise ContractViolation(
                f"training {rid} ({run.via}, mode {run.expected_mode}) did not reach a terminal state "
                f"within {self.end_timeout_seconds:g} s (cancel requested: {run.cancel_requested})"
            )
        if run.error is not None:
            raise ContractViolation(
                f"the manager raised {type(run.error).__name__}: {run.error} for a "
                "valid request; a mode's failure must become a failed result"
            )
        self._check_terminal(run)

    def _check_terminal(self, run: _Training) -> None:
        rid = run.request.request_id
        with self.log.lock:
            ends = list(self.log.finished.get(rid, []))
        if len(ends) != 1:
            raise ContractViolation(
                f"request {rid} reached {len(ends)} terminal states {ends}; every "
                "request must end exactly once (training_finished once)"
            )
        status = ends[0]
        if status not in TERMINAL:
            raise ContractViolation(f"request {rid} ended with status {status!r}, not one of {TERMINAL}")
        if run.result is not None and run.result.status != status:
            raise ContractViolation(
                f"request {rid}: the caller got {run.result.status!r} but the observers were told {status!r}"
            )
        if status == "cancelled" and not run.cancel_requested:
            raise ContractViolation(f"request {rid} ended cancelled although nobody cancelled it")
        if status == "error":
            error = run.result.error if run.result is not None else "(see the observers)"
            raise ContractViolation(
                f"request {rid} in mode {run.expected_mode} failed: {error}; a valid request must train"
            )

    # -- rules ---------------------------------------------------------------------------------

    @initialize(
        target=trainings,
        user=st.sampled_from(users),
        via=st.sampled_from(["thread", "async"]),
        percentage=st.integers(0, 100),
    )
    def start_one_on_the_candidate(self, user: str, via: str, percentage: int) -> str:
        """Every example trains the mode under test at least once, then draws the rollout."""
        assert self.manager.active_sessions() == {}
        self.rollout = attrs.evolve(self.rollout, enabled=True, percentage=100)
        request_id = self._start(user, via)
        self.rollout = attrs.evolve(self.rollout, percentage=percentage)
        return request_id

    @rule(target=trainings, user=st.sampled_from(users), via=st.sampled_from(["thread", "async"]))
    def start(self, user: str, via: str) -> str:
        return self._start(user, via)

    def _start(self, user: str, via: str) -> str:
        fields: dict[str, Any] = {
            k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.request_fields.items()
        }
        request = TrainingRequest(user_id=user, **fields)
        token = ThreadingCancellationToken()
        rollout = self.rollout
        run = _Training(request=request, token=token, expected_mode=expected_mode(rollout, user), via=via)
        started = self.log.expect(request.request_id)
        self.runs[request.request_id] = run
        if via == "async":
            run.future = asyncio.run_coroutine_threadsafe(
                self.manager.train_async(request, None, token), self._event_loop()
            )
        else:

            def target() -> None:
                try:
                    run.result = self.manager.train(request, None, token)
                except BaseException as exc:  # noqa: BLE001
                    run.error = exc

            run.thread = threading.Thread(target=target, daemon=True, name=f"contract-train-{user}")
            run.thread.start()
        deadline = time.monotonic() + self.start_timeout_seconds
        while not started.wait(0.02):
            if run.error is not None:
                raise ContractViolation(
                    f"the manager raised {type(run.error).__name__}: {run.error} "
                    f"before starting the training for {user}"
                ) from run.error
            if run.future is not None and run.future.done() and run.future.exception() is not None:
                error = run.future.exception()
                raise ContractViolation(
                    f"the manager raised {type(error).__name__}: {error} before "
                    f"starting the training for {user}"
                ) from error
            if time.monotonic() < deadline:
                continue
            raise ContractViolation(
                f"training for {user} ({via}) was not started within "
                f"{self.start_timeout_seconds:g} s (no training_started)"
            )
        decision = self.log.started[request.request_id]
        if decision.mode != run.expected_mode:
            raise ContractViolation(
                f"{user} (bucket {bucket_for(user)}) got mode {decision.mode!r} but the rollout in force "
                f"(enabled={rollout.enabled}, percentage={rollout.percentage}, excluded="
                f"{sorted(rollout.excluded_users)}) gives {run.expected_mode!r}: {decision.reason}"
            )
        if decision.bucket != bucket_for(user):
            raise ContractViolation(
                f"the decision for {user} says bucket {decision.bucket}, bucket_for gives {bucket_for(user)}"
            )
        return request.request_id

    @rule(rid=trainings)
    def cancel(self, rid: str) -> None:
        run = self.runs[rid]
        run.cancel_requested = True
        run.token.cancel(reason="cancelled by the state machine")

    @rule(rid=trainings)
    def cancel_the_awaiting_task(self, rid: str) -> None:
        run = self.runs[rid]
        if run.future is not None and not run.future.done():
            run.cancel_requested = True
            run.future.cancel()

    @rule(rid=trainings)
    def complete(self, rid: str) -> None:
        self._wait_for_end(self.runs[rid])

    @rule(percentage=st.integers(0, 100))
    def set_percentage(self, percentage: int) -> None:
        self.rollout = attrs.evolve(self.rollout, percentage=percentage)

    @rule(enabled=st.booleans())
    def set_enabled(self, enabled: bool) -> None:
        self.rollout = attrs.evolve(self.rollout, enabled=enabled)

    @rule(user=st.sampled_from(users), excluded=st.booleans())
    def roll_back_user(self, user: str, excluded: bool) -> None:
        users: set[str] = set(self.rollout.excluded_users)
        users = users | {user} if excluded else users - {user}
        changes: dict[str, Any] = {"excluded_users": frozenset(users)}
        self.rollout = attrs.evolve(self.rollout, **changes)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def sessions_never_exceed_trainings_in_flight(self) -> None:
        with self.log.lock:
            finished = sum(len(v) for v in self.log.finished.values())
        active = sum(self.manager.active_sessions().values())
        started, _ = self.log.counts()
        if active < 0 or active > started - finished:
            raise ContractViolation(
                f"{active} active session(s) with {started} started and {finished} finished trainings"
            )

    @invariant()
    def no_request_ends_twice(self) -> None:
        with self.log.lock:
            twice = {rid: ends for rid, ends in self.log.finished.items() if len(ends) > 1}
        if twice:
            raise ContractViolation(f"request(s) reached more than one terminal state: {twice}")

    def teardown(self) -> None:
        try:
            for run in self.runs.values():
                self._wait_for_end(run)
            started, finished = self.log.counts()
            if started != len(self.runs) or finished != len(self.runs):
                raise ContractViolation(f"{len(self.runs)} request(s), {started} started, {finished} ended")
            active = self.manager.active_sessions()
            if active:
                raise ContractViolation(
                    f"every training ended but the manager still counts active "
                    f"sessions {active}; the count must return to zero"
                )
        finally:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._loop_thread is not None:
                    self._loop_thread.join(5)
                self._loop.close()


def manager_state_machine(mode_factory: Callable[[], Any], **options: Any) -> type[ManagerStateMachine]:
    """A :class:`ManagerStateMachine` for ``mode_factory``; ``options`` set its class attributes.

    ``manager_state_machine(MyMode, max_examples=2, steps=8).TestCase`` is a
    test case pytest collects.
    """
    name = getattr(mode_factory, "__name__", "Mode")
    unknown = sorted(set(options) - set(dir(ManagerStateMachine)))
    if unknown:
        raise TypeError(f"unknown ManagerStateMachine option(s): {', '.join(unknown)}")
    return type(
        f"{name}ManagerStateMachine",
        (ManagerStateMachine,),
        {"mode_factory": staticmethod(mode_factory), **options},
    )
