"""The shadow stage end to end: legacy serves the user, unified runs the same request in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_support import SHORT, STRATEGY

from ktrdr_core import ThreadingCancellationToken, TrainingManager, TrainingRequest, get_plugin_manager
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.plugins import reset_plugin_manager
from ktrdr_core.rollout.gates import PASS, GateConfig, evaluate_gate
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.shadow import set_shadow_percentage
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service.shadow import ShadowPlugin, ShadowRunner

WAIT = 300  # a spawned process imports torch before it trains: generous on a loaded machine


def request(epochs: int = 2, **extra: object) -> TrainingRequest:
    return TrainingRequest(
        strategy=STRATEGY, user_id="alice", overrides={"epochs": epochs, "seed": 7}, **SHORT, **extra
    )


@pytest.fixture
def shadowing(ktrdr_home: Path) -> Iterator[tuple[TrainingManager, ShadowRunner, list[str]]]:
    outcomes: list[str] = []
    runner = ShadowRunner(on_outcome=lambda result, _ratios: outcomes.append(result))
    reset_plugin_manager()
    pm = get_plugin_manager()
    pm.register(ShadowPlugin(runner), name="ktrdr-shadow")
    set_shadow_percentage(RolloutStore(), 100, reason="test")
    yield TrainingManager(pm), runner, outcomes
    runner.close()
    pm.unregister(name="ktrdr-shadow")
    reset_plugin_manager()


def models(home: Path) -> list[Path]:
    return sorted(p for p in (home / "models").glob("*/*") if p.is_dir() and not p.name.startswith("."))


def test_a_control_run_gets_a_recorded_shadow_pair(shadowing: tuple, ktrdr_home: Path) -> None:
    manager, runner, outcomes = shadowing
    user = request()
    result = manager.train(user)
    assert result.success and result.metadata["mode"] == "legacy", result.error
    assert runner.wait(WAIT)
    assert outcomes == ["equivalent"]

    ledger = RunLedger()
    runs = {r.request_id: r for r in ledger.runs()}
    (shadow,) = [r for r in runs.values() if r.shadow]
    assert shadow.shadow_of == user.request_id and shadow.mode == "unified" and shadow.status == "success"
    assert not runs[user.request_id].shadow
    assert shadow.cpu_seconds and shadow.progress_max_deviation == 0.0
    (pair,) = ledger.comparisons(source="shadow")
    assert pair.equivalent and pair.control_run_id == runs[user.request_id].id
    assert pair.candidate_run_id == shadow.id
    # the shadow saved no model: the only model folder is the user's
    assert [str(p) for p in models(ktrdr_home)] == [result.model_path]
    # the user's result is what an unshadowed run gives
    manager.plugin_manager.unregister(name="ktrdr-shadow")
    alone = manager.train(request())
    manager.plugin_manager.register(ShadowPlugin(runner), name="ktrdr-shadow")
    assert alone.training_metrics["val_loss"] == result.training_metrics["val_loss"]

    # the gate uses the pair for model accuracy, and never counts the shadow run as traffic
    config = GateConfig.from_mapping({"min_pairs": 1, "min_runs": 1}, source="test")
    report = evaluate_gate("off", ledger=ledger, settings=RolloutPolicy.from_env().settings, config=config)
    names = {c.name: c for c in report.criteria}
    assert names["model accuracy: val_loss rise (paired)"].verdict == PASS
    assert names["candidate runs"].measured == 0


def test_the_shadow_is_cancelled_with_the_users_run(shadowing: tuple) -> None:
    manager, runner, outcomes = shadowing
    token = ThreadingCancellationToken()
    user = request(epochs=500)
    threading.Timer(1.0, token.cancel, kwargs={"reason": "user pressed cancel"}).start()
    started = time.monotonic()
    result = manager.train(user, cancel=token)
    assert result.status == "cancelled"
    assert runner.wait(WAIT)
    assert outcomes == ["cancelled"]
    (shadow,) = RunLedger().runs(shadow=True)
    assert shadow.status == "cancelled" and shadow.shadow_of == user.request_id
    assert RunLedger().comparisons(source="shadow") == []
    assert time.monotonic() - started < WAIT


def test_forced_runs_and_a_busy_slot_are_not_shadowed(shadowing: tuple) -> None:
    manager, runner, outcomes = shadowing
    manager.train(request(), mode="legacy")  # forced: never shadowed
    assert runner.busy() == 0
    first = request(epochs=3)
    # the first run's shadow holds the only slot while the second run starts
    thread = threading.Thread(target=lambda: manager.train(first))
    thread.start()
    deadline = time.monotonic() + WAIT
    while runner.busy() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    manager.train(request(epochs=1))
    thread.join(WAIT)
    assert runner.wait(WAIT)
    assert "skipped" in outcomes and len(RunLedger().runs(shadow=True)) == 1
