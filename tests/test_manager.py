"""The TrainingManager routing, measuring and isolating small in-process modes.

The modes here are minimal but real ExecutionMode implementations (they
report progress, honour cancellation, fail); the training engine has its own
tests, and the real modes run through this manager in tests/integration.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from inprocess_modes import StepMode, plugin_manager_with

from ktrdr_core import (
    ModeHealth,
    RolloutPolicy,
    ThreadingCancellationToken,
    TrainingManager,
    TrainingRequest,
    TrainingResult,
    hookimpl,
)
from ktrdr_core.errors import NoModeInstalledError
from ktrdr_core.rollout.settings import RolloutSettings


class Recorder:
    """A plugin observing everything the manager does."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[tuple[str, str, Any]] = []
        self.updates: list[Mapping[str, Any]] = []

    @hookimpl
    def progress_sinks(self, request: TrainingRequest, decision: Any) -> list[Any]:
        return [lambda epoch, total, metrics: self.updates.append(metrics)]

    @hookimpl
    def training_started(self, request: TrainingRequest, decision: Any) -> None:
        self.started.append(decision.mode)

    @hookimpl
    def training_finished(self, request: TrainingRequest, decision: Any, result: Any, report: Any) -> None:
        self.finished.append((decision.mode, result.status, report))


def manager_with(*modes: Any, percentage: int = 0, enabled: bool = True) -> tuple[TrainingManager, Recorder]:
    pm = plugin_manager_with(*modes)
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    policy = RolloutPolicy(settings=RolloutSettings(enabled=enabled, percentage=percentage))
    return TrainingManager(pm, policy_provider=lambda: policy), recorder


def test_routes_by_rollout_and_records_the_decision() -> None:
    manager, recorder = manager_with(StepMode("legacy"), StepMode("unified"), percentage=100)
    result = manager.train(TrainingRequest(strategy="s", user_id="alice"))
    assert result.success and result.metadata["mode"] == "unified"
    assert result.metadata["decision"]["bucket"] == 0
    assert "candidate" in result.metadata["decision"]["reason"]
    assert result.metadata["duration_seconds"] > 0
    assert recorder.started == ["unified"]
    mode, status, report = recorder.finished[0]
    assert (mode, status, report.progress_updates) == ("unified", "success", 5)
    assert len(report.progress_intervals) == 4


def test_forced_mode_bypasses_rollout_and_says_so() -> None:
    manager, _ = manager_with(StepMode("legacy"), StepMode("unified"), percentage=0)
    result = manager.train(TrainingRequest(strategy="s", user_id="alice"), mode="unified")
    assert result.metadata["mode"] == "unified"
    assert result.metadata["decision"]["forced"] is True
    assert "forced" in result.metadata["decision"]["reason"]


def test_unknown_forced_mode_is_a_clear_error() -> None:
    manager, _ = manager_with(StepMode("legacy"))
    with pytest.raises(NoModeInstalledError, match="'warp' is not installed"):
        manager.train(TrainingRequest(strategy="s"), mode="warp")


def test_no_mode_installed_is_a_clear_error() -> None:
    manager, _ = manager_with()
    with pytest.raises(NoModeInstalledError, match="no execution mode is installed"):
        manager.train(TrainingRequest(strategy="s"))


def test_a_mode_that_raises_gives_a_failed_result_and_the_manager_goes_on() -> None:
    manager, recorder = manager_with(StepMode("legacy", fail_at=2), StepMode("unified"))
    failed = manager.train(TrainingRequest(strategy="s"))
    assert (failed.success, failed.status) == (False, "error")
    assert failed.error == "RuntimeError: disk full"
    assert manager.active_sessions() == {}
    assert manager.train(TrainingRequest(strategy="s"), mode="unified").success
    assert [f[1] for f in recorder.finished] == ["error", "success"]


def test_cancellation_gives_cancelled_result_with_latency() -> None:
    manager, recorder = manager_with(StepMode("legacy", steps=1000, delay=0.005))
    token = ThreadingCancellationToken()
    threading.Timer(0.1, token.cancel, kwargs={"reason": "user pressed stop"}).start()
    result = manager.train(TrainingRequest(strategy="s"), cancel=token)
    assert (result.status, result.error) == ("cancelled", "user pressed stop")
    report = recorder.finished[0][2]
    assert report.cancellation_latency_seconds is not None
    assert 0 <= report.cancellation_latency_seconds < 1.0


def test_raising_sink_and_observer_do_not_break_the_training() -> None:
    manager, _ = manager_with(StepMode("legacy"))

    class Broken:
        @hookimpl
        def progress_sinks(self, request: Any, decision: Any) -> list[Any]:
            def sink(epoch: int, total: int, metrics: Any) -> None:
                raise ValueError("sink bug")

            return [sink]

        @hookimpl
        def training_finished(self, request: Any, decision: Any, result: Any, report: Any) -> None:
            raise ValueError("observer bug")

    manager.plugin_manager.register(Broken(), name="broken")
    seen: list[int] = []
    result = manager.train(TrainingRequest(strategy="s"), progress=lambda e, t, m: seen.append(m["batch"]))
    assert result.success
    assert seen == [1, 2, 3, 4, 5]


def test_cancellation_sources_are_attached_and_detached() -> None:
    manager, _ = manager_with(StepMode("legacy", steps=1000, delay=0.005))
    events: list[str] = []

    class Source:
        def attach(self, token: Any) -> None:
            events.append("attach")
            threading.Timer(0.05, token.cancel, kwargs={"reason": "deadline"}).start()

        def detach(self) -> None:
            events.append("detach")

    class Plugin:
        @hookimpl
        def cancellation_sources(self, request: Any) -> list[Any]:
            return [Source()]

    manager.plugin_manager.register(Plugin(), name="sources")
    result = manager.train(TrainingRequest(strategy="s"))
    assert result.status == "cancelled" and result.error == "deadline"
    assert events == ["attach", "detach"]


def test_train_async_keeps_the_event_loop_responsive() -> None:
    manager, _ = manager_with(StepMode("legacy", steps=40, delay=0.01))

    async def scenario() -> tuple[TrainingResult, float]:
        worst = 0.0
        task = asyncio.create_task(manager.train_async(TrainingRequest(strategy="s")))
        while not task.done():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)
        return await task, worst

    result, worst_lag = asyncio.run(scenario())
    assert result.success
    assert worst_lag < 0.1


def test_cancelling_the_awaiting_task_cancels_the_training() -> None:
    manager, recorder = manager_with(StepMode("legacy", steps=10_000, delay=0.002))

    async def scenario() -> None:
        task = asyncio.create_task(manager.train_async(TrainingRequest(strategy="s")))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert recorder.finished[0][1] == "cancelled"
    assert manager.active_sessions() == {}


def test_plugin_selector_overrides_the_default() -> None:
    from ktrdr_core import Decision

    manager, _ = manager_with(StepMode("legacy"), StepMode("unified"), percentage=0)

    class Research:
        @hookimpl(tryfirst=True)
        def select_mode(self, request: Any, policy: Any, modes: Any) -> Decision | None:
            if request.user_id.startswith("research-"):
                return Decision(
                    mode="unified", reason="research users get unified.", bucket=0, user_id=request.user_id
                )
            return None

    manager.plugin_manager.register(Research(), name="research")
    assert manager.decide(TrainingRequest(strategy="s", user_id="research-1")).mode == "unified"
    assert manager.decide(TrainingRequest(strategy="s", user_id="bob")).mode == "legacy"


def test_health_if_importable_names_the_missing_module() -> None:
    assert ModeHealth.if_importable("demo", ("json", "ktrdr_core")).healthy
    health = ModeHealth.if_importable("demo", ("json", "no_such_module_here"))
    assert not health.healthy
    assert health.detail == "the demo mode cannot run: no_such_module_here is not installed"


# -- hooks go through pluggy's own call machinery --------------------------------------------------


def test_hookcall_monitoring_sees_every_hook_the_manager_calls() -> None:
    manager, _ = manager_with(StepMode("legacy"), StepMode("unified"))
    manager.plugin_manager.execution_modes()  # collected once, before: not part of a request
    seen: list[str] = []
    undo = manager.plugin_manager.add_hookcall_monitoring(
        lambda hook_name, impls, kwargs: seen.append(hook_name),
        lambda outcome, hook_name, impls, kwargs: None,
    )
    try:
        assert manager.train(TrainingRequest(strategy="s")).success
    finally:
        undo()
    assert seen == [
        "select_mode",
        "progress_sinks",
        "cancellation_sources",
        "training_started",
        "training_finished",
    ]


def test_wrapper_impls_wrap_the_call() -> None:
    """A new-style wrapper adds a sink to the answers; an old-style hookwrapper sees the call's outcome."""
    manager, recorder = manager_with(StepMode("legacy", steps=3))
    extra: list[Any] = []
    outcomes: list[Any] = []

    class Wrapping:
        @hookimpl(wrapper=True)
        def progress_sinks(self, request: Any, decision: Any) -> Any:
            found = yield
            return [*found, [lambda epoch, total, metrics: extra.append(metrics["batch"])]]

        @hookimpl(hookwrapper=True)
        def training_finished(self, request: Any, decision: Any, result: Any, report: Any) -> Any:
            outcome = yield
            outcomes.append((result.status, outcome.exception))

    manager.plugin_manager.register(Wrapping(), name="wrapping")
    assert manager.train(TrainingRequest(strategy="s")).success
    assert extra == [1, 2, 3] and len(recorder.updates) == 3  # the wrapped call's own sinks still answer
    assert outcomes == [("success", None)]


def test_a_broken_impl_is_isolated_recorded_and_shown() -> None:
    manager, recorder = manager_with(StepMode("legacy"))

    class Broken:
        @hookimpl(tryfirst=True)  # called before the recorder: the recorder must still hear the start
        def training_started(self, request: Any, decision: Any) -> None:
            raise ValueError("observer bug")

    pm = manager.plugin_manager
    pm.register_checked(Broken(), name="broken", distribution="broken-dist", version="1")
    assert manager.train(TrainingRequest(strategy="s")).success
    assert recorder.started == ["legacy"] and len(recorder.finished) == 1
    infos = {info.name: info for info in pm.plugin_infos()}
    assert infos["broken"].error == "training_started: ValueError: observer bug"
    assert infos["provider"].error is None


def test_a_raising_wrapper_fails_only_its_hook_and_is_recorded() -> None:
    manager, recorder = manager_with(StepMode("legacy"))

    class BadWrapper:
        @hookimpl(wrapper=True)
        def cancellation_sources(self, request: Any) -> Any:
            yield
            raise RuntimeError("wrapper bug")

    manager.plugin_manager.register_checked(BadWrapper(), name="badwrap", distribution="b", version="1")
    assert manager.train(TrainingRequest(strategy="s")).success
    assert recorder.finished and recorder.finished[0][1] == "success"
    infos = {info.name: info for info in manager.plugin_manager.plugin_infos()}
    assert infos["badwrap"].error == "cancellation_sources: RuntimeError: wrapper bug"


def test_a_selector_that_raises_stops_the_request_naming_its_plugin() -> None:
    """Not isolated like the observers: routing by another rule instead would be a silent surprise."""
    from ktrdr_core.errors import ConfigurationError

    manager, recorder = manager_with(StepMode("legacy"))

    class BadRouter:
        @hookimpl(tryfirst=True)
        def select_mode(self, request: Any, policy: Any, modes: Any) -> Any:
            raise KeyError("region")

    manager.plugin_manager.register_checked(BadRouter(), name="router", distribution="r", version="1")
    with pytest.raises(ConfigurationError, match=r"plugin router raised in select_mode: KeyError: 'region'"):
        manager.train(TrainingRequest(strategy="s"))
    assert recorder.started == []  # nothing ran
    infos = {info.name: info for info in manager.plugin_manager.plugin_infos()}
    assert infos["router"].error == "select_mode: KeyError: 'region'"
    assert manager.train(TrainingRequest(strategy="s"), mode="legacy").success  # --mode skips the selector
