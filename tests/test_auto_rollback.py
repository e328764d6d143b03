"""Automatic rollback: the exact threshold, the audit reason, and the end-to-end path through the manager."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cli_inprocess import run_ktrdr
from inprocess_modes import ModeProvider, StepMode

from ktrdr_core import TrainingManager, TrainingRequest, TrainingResult
from ktrdr_core.errors import ConfigurationError
from ktrdr_core.ledger import RunLedger
from ktrdr_core.plugins import get_plugin_manager, reset_plugin_manager
from ktrdr_core.rollout.autorollback import (
    AUTO_ROLLBACK_ACTION,
    AutoRollbackConfig,
    auto_rollback_state,
    maybe_auto_rollback,
)
from ktrdr_core.rollout.store import RolloutStore


@pytest.fixture(autouse=True)
def only_in_test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load no installed mode plugin: these tests register their own 'legacy'/'unified'."""
    monkeypatch.setenv("KTRDR_PLUGINS", "no-installed-plugins")
    reset_plugin_manager()


def rollout(
    stage_pct: int = 10,
    *,
    window: int = 20,
    threshold: float | None = None,
    exclude: bool = False,
    enabled: bool = True,
) -> RolloutStore:
    store = RolloutStore()
    fields: dict[str, Any] = {
        "enabled": True,
        "percentage": stage_pct,
        "auto_rollback": {"enabled": enabled, "window_runs": window, "exclude_failed_users": exclude},
    }
    if threshold is not None:
        fields["gates"] = {"error_rate_pct": threshold}
    store.set_fields("set_stage", fields, reason="test setup")
    return store


def finish(
    ledger: RunLedger,
    *,
    errors: int,
    successes: int,
    mode: str = "unified",
    started_at: float | None = None,
    error_kind: str | None = None,
) -> None:
    start = time.time() if started_at is None else started_at
    for i in range(successes + errors):
        status = "error" if i < errors else "success"
        ledger.record_run(
            request_id=f"{mode}-{i}-{time.monotonic_ns()}",
            user_id=f"user{i}",
            strategy="s",
            mode=mode,
            status=status,
            started_at=start + i * 1e-3,
            duration_seconds=1.0,
            error="boom" if status == "error" else None,
            error_kind=error_kind,
        )


def check_now(ledger: RunLedger) -> Any:
    return maybe_auto_rollback(ledger, ledger.runs(limit=1)[0])


@pytest.mark.parametrize(
    ("threshold", "window", "errors", "triggers"),
    [
        (5.0, 20, 1, False),  # 1/20 = 5 %: exactly at the threshold, does not trigger
        (4.99, 20, 1, True),  # the same rate just above a 4.99 % threshold triggers
        (5.0, 20, 2, True),  # 10 % > 5 %
        (10.0, 10, 1, False),  # 1/10 = 10 % == 10 %
        (10.0, 10, 2, True),  # 20 %
    ],
)
def test_triggers_exactly_above_the_threshold(
    threshold: float, window: int, errors: int, triggers: bool
) -> None:
    store = rollout(window=window, threshold=threshold)
    ledger = RunLedger()
    finish(ledger, errors=errors, successes=window - errors)
    entry = check_now(ledger)
    assert (entry is not None) == triggers
    assert store.read().percentage == (0 if triggers else 10)


def test_default_expanded_threshold_at_exactly_half_a_percent() -> None:
    store = rollout(50, window=200)  # expanded: error_rate_pct 0.5 by default
    ledger = RunLedger()
    finish(ledger, errors=0, successes=199)
    finish(ledger, errors=1, successes=0)  # 1/200 = 0.5 % exactly
    assert check_now(ledger) is None and store.read().percentage == 50
    finish(ledger, errors=1, successes=0)  # the last 200 now hold 198 successes, 2 errors: 1 %
    entry = check_now(ledger)
    assert entry is not None and store.read().percentage == 0


def test_the_audit_reason_states_rate_threshold_and_window() -> None:
    store = rollout(window=10, threshold=10.0)
    ledger = RunLedger()
    finish(ledger, errors=3, successes=7)
    entry = check_now(ledger)
    assert entry is not None
    last = store.history()[-1]
    assert (last.action, last.actor) == (AUTO_ROLLBACK_ACTION, "ktrdr-auto-rollback")
    assert (last.old, last.new) == (10, 0)
    assert "error rate 30 %" in last.reason and "3 of the last 10 candidate runs" in last.reason
    assert "canary threshold 10 %" in last.reason and "window: 10 runs" in last.reason
    assert store.read().enabled is True  # only the percentage moves


def test_nothing_happens_before_the_window_is_full() -> None:
    store = rollout(window=10, threshold=1.0)
    ledger = RunLedger()
    finish(ledger, errors=9, successes=0)
    assert check_now(ledger) is None and store.read().percentage == 10


def test_disabled_off_stage_and_control_runs_never_roll_back() -> None:
    ledger = RunLedger()
    store = rollout(window=2, threshold=1.0, enabled=False)
    finish(ledger, errors=2, successes=0)
    assert check_now(ledger) is None
    store = rollout(window=2, threshold=1.0)
    finish(ledger, errors=2, successes=0, mode="legacy")
    assert check_now(ledger) is None  # the finished run was the control's
    store.set_fields("set_stage", {"enabled": False, "percentage": 0}, reason="off")
    finish(ledger, errors=2, successes=0)
    assert check_now(ledger) is None and [e.action for e in store.history()].count(AUTO_ROLLBACK_ACTION) == 0


def test_failures_before_the_last_rollout_change_are_forgotten() -> None:
    ledger = RunLedger()
    finish(ledger, errors=5, successes=0, started_at=time.time() - 3600)  # the incident, an hour ago
    store = rollout(window=5, threshold=1.0)  # re-enabled after the fix
    finish(ledger, errors=0, successes=5)
    assert check_now(ledger) is None and store.read().percentage == 10


def test_bad_input_failures_do_not_count() -> None:
    store = rollout(window=5, threshold=1.0)
    ledger = RunLedger()
    finish(ledger, errors=5, successes=0, error_kind="bad_input")
    assert check_now(ledger) is None and store.read().percentage == 10


def test_opt_in_exclusion_of_failing_users() -> None:
    store = rollout(window=4, threshold=10.0, exclude=True)
    store.exclude("already-out", reason="earlier")
    ledger = RunLedger()
    finish(ledger, errors=2, successes=2)
    assert check_now(ledger) is not None
    assert store.read().excluded_users == {"already-out", "user0", "user1"}
    assert "excluded the users whose runs failed: user0, user1" in store.history()[-1].reason


def test_env_override_is_called_out_in_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    store = rollout(window=2, threshold=1.0)
    monkeypatch.setenv("UNIFIED_TRAINING_ROLLOUT_PERCENTAGE", "10")
    ledger = RunLedger()
    finish(ledger, errors=2, successes=0)
    assert check_now(ledger) is not None
    assert "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE set in the environment wins" in store.history()[-1].reason


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"enabled": "yes"}, "auto_rollback.enabled"),
        ({"window_runs": 0}, "auto_rollback.window_runs"),
        ({"window": 5}, "auto_rollback.window"),
    ],
)
def test_bad_auto_rollback_settings_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"rollout.json: '{key}'"):
        AutoRollbackConfig.from_mapping(section, source="rollout.json")


# -- end to end through the manager and the CLI ---------------------------------------------


def test_end_to_end_rollback_and_status(ktrdr_home: Path) -> None:
    ok = TrainingResult(success=True)
    modes = (
        StepMode("legacy", steps=1, result=ok),
        StepMode("unified", steps=1, fail_at=1, error="NaN loss", result=ok),
    )
    pm = get_plugin_manager()
    pm.register_checked(ModeProvider(*modes), name="p", distribution="test-modes", version="1")
    manager = TrainingManager(pm)
    store = rollout(100, window=3)  # full: threshold 0.1 %
    modes = [manager.train(TrainingRequest(strategy="s", user_id=f"u{i}")).metadata["mode"] for i in range(4)]
    # three candidate failures fill the window and trip the rollback; the next request gets legacy
    assert modes == ["unified", "unified", "unified", "legacy"]
    assert store.read().percentage == 0
    assert [r.status for r in RunLedger().runs(mode="unified")] == ["error"] * 3

    proc = run_ktrdr("rollout", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)["auto_rollback"]
    assert state["rolled_back"] is True and "full threshold 0.1 %" in state["last"]["reason"]
    text = run_ktrdr("rollout", "status").stdout
    assert "AUTO-ROLLED BACK at" in text

    store.set_fields("set_stage", {"enabled": True, "percentage": 10}, reason="fixed, back to canary")
    assert auto_rollback_state(store)["rolled_back"] is False


def test_a_rollout_change_over_the_api_ends_the_rolled_back_state(ktrdr_home: Path) -> None:
    store = RolloutStore(ktrdr_home)
    store.set_fields(AUTO_ROLLBACK_ACTION, {"enabled": True, "percentage": 0}, reason="auto")
    assert auto_rollback_state(store)["rolled_back"] is True
    store.set_fields("api_update", {"percentage": 10}, reason="fixed, canary again", actor="api")
    assert auto_rollback_state(store)["rolled_back"] is False


def test_failing_shadow_runs_are_not_user_traffic() -> None:
    store = rollout(window=10, threshold=10.0)
    ledger = RunLedger()
    finish(ledger, errors=0, successes=10)
    for i in range(10):  # the latest runs: the candidate failed every shadow run, users never saw them
        ledger.record_run(
            request_id=f"shadow-{i}",
            user_id="u",
            strategy="s",
            mode="unified",
            status="error",
            error="boom",
            duration_seconds=1.0,
            shadow=True,
        )
    user_run = ledger.runs(shadow=False, limit=1)[0]
    assert maybe_auto_rollback(ledger, user_run) is None and store.read().percentage == 10
