"""The shadow stage's settings, sampling and routing rules (no mode needed; the real runs are in integration)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cli_inprocess import CliRun, run_ktrdr

from ktrdr_core import ModeHealth, TrainingRequest, TrainingResult
from ktrdr_core.errors import ConfigurationError
from ktrdr_core.rollout.policy import Decision
from ktrdr_core.rollout.shadow import ShadowConfig, sampled, set_shadow_percentage
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service.shadow import ShadowPlugin, shadow_request


def ktrdr(*args: str) -> CliRun:
    return run_ktrdr(*args, env={"KTRDR_ACTOR": "tester"})


class RecordingRunner:
    """Stands in for the process runner: the routing rules are what is under test here."""

    def __init__(self, free: bool = True) -> None:
        self.free = free
        self.submitted: list[tuple[str, str, str]] = []
        self.outcomes: list[str] = []
        self.finished: list[tuple[str, str]] = []

    def submit(self, request: TrainingRequest, *, control: str, candidate: str, max_concurrent: int) -> Any:
        if not self.free:
            return None
        self.submitted.append((request.request_id, control, candidate))
        return object()

    def report_outcome(self, result: str, _ratios: Any) -> None:
        self.outcomes.append(result)

    def control_finished(self, request_id: str, result: TrainingResult) -> None:
        self.finished.append((request_id, result.status))


def decision(mode: str = "legacy", **flags: bool) -> Decision:
    return Decision(mode=mode, reason="test", bucket=1, **flags)


def test_the_sampled_share_follows_the_percentage() -> None:
    ids = [uuid.uuid4().hex for _ in range(4000)]
    share = sum(sampled(i, 25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert not any(sampled(i, 0) for i in ids) and all(sampled(i, 100) for i in ids)
    assert all(sampled(i, 25) == sampled(i, 25) for i in ids[:50])  # deterministic


def test_the_shadow_request_is_the_same_request_saving_no_model() -> None:
    user = TrainingRequest(strategy="s", user_id="alice", symbols="A,B", overrides={"epochs": 3})
    copy = shadow_request(user)
    assert copy.request_id != user.request_id
    assert (copy.strategy, copy.user_id, copy.symbols) == (user.strategy, user.user_id, user.symbols)
    assert copy.overrides == {"epochs": 3, "save_model": False} and user.overrides == {"epochs": 3}


def test_only_rollout_routed_control_runs_are_shadowed(ktrdr_home: Path) -> None:
    set_shadow_percentage(RolloutStore(), 100, reason="test")
    runner = RecordingRunner()
    plugin = ShadowPlugin(runner)  # type: ignore[arg-type]
    plugin.training_started(TrainingRequest(strategy="s"), decision())
    plugin.training_started(TrainingRequest(strategy="s"), decision(forced=True))
    plugin.training_started(TrainingRequest(strategy="s"), decision("unified", candidate=True))
    plugin.training_started(TrainingRequest(strategy="s"), decision(fallback=True))
    assert [(c, k) for _i, c, k in runner.submitted] == [("legacy", "unified")]
    busy = RecordingRunner(free=False)
    ShadowPlugin(busy).training_started(TrainingRequest(strategy="s"), decision())  # type: ignore[arg-type]
    assert busy.outcomes == ["skipped"]
    request = TrainingRequest(strategy="s")
    plugin.training_finished(request, TrainingResult.cancelled("stop"))
    assert runner.finished == [(request.request_id, "cancelled")]


def test_nothing_is_shadowed_at_zero_or_with_a_broken_setting(ktrdr_home: Path) -> None:
    runner = RecordingRunner()
    plugin = ShadowPlugin(runner)  # type: ignore[arg-type]
    plugin.training_started(TrainingRequest(strategy="s"), decision())
    RolloutStore().set_fields("edit", {"shadow": {"percentage": "all"}}, reason="typo")
    plugin.training_started(TrainingRequest(strategy="s"), decision())
    assert runner.submitted == []


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"percentage": 150}, "shadow.percentage"),
        ({"percentage": True}, "shadow.percentage"),
        ({"max_concurrent": 0}, "shadow.max_concurrent"),
        ({"share": 5}, "shadow.share"),
        ([], "shadow"),
    ],
)
def test_bad_shadow_settings_name_the_key(data: Any, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ShadowConfig.from_mapping(data, source="/x/rollout.json")
    assert f"'{key}" in str(info.value) and str(info.value).startswith("/x/rollout.json: ")


def test_rollout_shadow_command_is_audited_and_shown(ktrdr_home: Path) -> None:
    proc = ktrdr("rollout", "shadow", "30", "--reason", "shadow week")
    assert proc.returncode == 0, proc.stderr
    store = RolloutStore()
    assert ShadowConfig.read(store).percentage == 30
    last = store.history()[-1]
    assert (last.action, last.actor, last.reason) == ("set_shadow", "tester", "shadow week")
    assert last.new == {"percentage": 30}
    status = ktrdr("rollout", "status", "--json")
    assert json.loads(status.stdout)["shadow"] == {"percentage": 30, "max_concurrent": 1}
    assert "shadow:     30 %" in ktrdr("rollout", "status").stdout
    assert "No change" in ktrdr("rollout", "shadow", "30").stdout
    for bad in ("150", "101", "half"):
        proc = ktrdr("rollout", "shadow", bad)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert ShadowConfig.read(store).percentage == 30


def test_a_missing_or_unhealthy_candidate_is_not_shadowed(ktrdr_home: Path) -> None:
    from inprocess_modes import StepMode, plugin_manager_with

    set_shadow_percentage(RolloutStore(), 100, reason="test")

    class Sick(StepMode):
        def health(self) -> ModeHealth:
            return ModeHealth.unhealthy("GPU driver missing")

    for modes in ((StepMode("legacy"),), (StepMode("legacy"), Sick("unified"))):
        runner = RecordingRunner()
        plugin = ShadowPlugin(runner, plugin_manager=plugin_manager_with(*modes))  # type: ignore[arg-type]
        plugin.training_started(TrainingRequest(strategy="s"), decision())
        assert runner.submitted == []
    runner = RecordingRunner()
    healthy = plugin_manager_with(StepMode("legacy"), StepMode("unified"))
    ShadowPlugin(runner, plugin_manager=healthy).training_started(  # type: ignore[arg-type]
        TrainingRequest(strategy="s"), decision()
    )
    assert len(runner.submitted) == 1
