"""Phase 3: `ktrdr rollout complete` (gated, audited, with a rollback point) and `restore NAME`."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from cli_inprocess import CliRun, run_ktrdr

from ktrdr_core.ledger import RunLedger
from ktrdr_core.rollout.autorollback import last_rollout_change
from ktrdr_core.rollout.completion import rollback_points
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.store import RolloutStore

# A full gate that 60 clean runs can pass: the criteria without data here are switched off.
EASY_FULL = {
    "full": {
        "error_rate_pct": 5.0,
        "duration_ratio": None,
        "cpu_ratio": None,
        "memory_ratio": None,
        "model_accuracy_pct": None,
        "progress_accuracy_pct": None,
        "comparison": False,
        "progress_interval_s": None,
    }
}


def ktrdr(*args: str, **env: str) -> CliRun:
    return run_ktrdr(*args, env={"KTRDR_ACTOR": "tester", **env})


def at_full(days_ago: float = 10, **extra: object) -> RolloutStore:
    store = RolloutStore()
    store.set_fields(
        "set_stage", {"enabled": True, "percentage": 100, "excluded_users": ["bob"], **extra}, reason="setup"
    )
    lines = store.audit_path.read_text().splitlines()
    last = json.loads(lines[-1])
    last["timestamp"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)).isoformat(
        timespec="seconds"
    )
    store.audit_path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    return store


def clean_runs(count: int = 60) -> None:
    ledger = RunLedger()
    for i in range(count):
        ledger.record_run(
            request_id=f"r{i}",
            user_id=f"u{i}",
            strategy="s",
            mode="unified",
            status="success",
            started_at=time.time() - 3600 + i,
            duration_seconds=5.0,
        )


def test_complete_is_refused_until_the_full_gate_passes(ktrdr_home: Path) -> None:
    store = at_full()
    before = store.settings_path.read_bytes(), len(store.history())
    proc = ktrdr("rollout", "complete")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "refusing to complete the migration" in proc.stderr
    assert (store.settings_path.read_bytes(), len(store.history())) == before
    forced = ktrdr("rollout", "complete", "--force")
    assert forced.returncode == 2 and "--force needs --reason" in forced.stderr


def test_complete_then_restore(ktrdr_home: Path) -> None:
    store = at_full(gates=EASY_FULL, shadow={"percentage": 50})
    clean_runs()
    proc = ktrdr("rollout", "complete", "--name", "pre-phase3", "--reason", "all green")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout and "Rollback point: pre-phase3" in proc.stdout
    settings = store.read()
    assert (settings.control, settings.enabled, settings.percentage, settings.completed) == (
        "unified",
        False,
        0,
        True,
    )
    raw = store.read_raw()
    assert raw["shadow"]["percentage"] == 0 and raw["gates"] == EASY_FULL  # thresholds kept
    entry = store.history()[-1]
    assert entry.action == "complete" and "gate full PASS" in entry.reason and entry.actor == "tester"
    point = rollback_points(store)["pre-phase3"]["settings"]
    assert point["control"] == "legacy" and point["candidate"] == "unified" and point["percentage"] == 100
    assert last_rollout_change(store) is not None
    decision = RolloutPolicy.from_env().decide("bob", ["unified"])
    assert decision.mode == "unified" and "migration is complete" in decision.reason
    assert not decision.fallback and not decision.candidate
    again = ktrdr("rollout", "complete", "--force", "--reason", "twice")
    assert again.returncode == 2 and "the migration is complete" in again.stderr
    assert ktrdr("rollout", "advance").returncode == 2

    assert "pre-phase3" in ktrdr("rollout", "restore").stdout
    bad = ktrdr("rollout", "restore", "nope")
    assert bad.returncode == 2 and "known: pre-phase3" in bad.stderr
    back = ktrdr("rollout", "restore", "pre-phase3", "--reason", "regression found")
    assert back.returncode == 0, back.stderr
    settings = store.read()
    assert (settings.control, settings.candidate, settings.stage, settings.completed) == (
        "legacy",
        "unified",
        "full",
        False,
    )
    assert settings.excluded_users == frozenset({"bob"}) and store.read_raw()["shadow"]["percentage"] == 50
    last = store.history()[-1]
    assert last.action == "restore" and "regression found" in last.reason


def test_forced_complete_names_the_verdict(ktrdr_home: Path) -> None:
    store = at_full()
    proc = ktrdr("rollout", "complete", "--force", "--reason", "CTO sign-off")
    assert proc.returncode == 0, proc.stderr
    entry = store.history()[-1]
    assert entry.action == "complete_forced" and "INSUFFICIENT DATA" in entry.reason
    assert "CTO sign-off" in entry.reason and "[FORCED]" in proc.stdout
    (name,) = rollback_points(store)
    assert name.startswith("before-complete-legacy-")


def test_bad_point_names_are_refused(ktrdr_home: Path) -> None:
    at_full()
    proc = ktrdr("rollout", "complete", "--name", "../x", "--force", "--reason", "r")
    assert proc.returncode == 2 and "invalid rollback point name" in proc.stderr
    assert not RolloutStore().read().completed


def test_status_shows_the_completion_and_its_rollback_point(ktrdr_home: Path) -> None:
    at_full()
    assert ktrdr("rollout", "complete", "--force", "--reason", "r", "--name", "p3").returncode == 0
    text = ktrdr("rollout", "status").stdout
    assert "migration complete" in text and "rollback points: p3" in text
    data = json.loads(ktrdr("rollout", "status", "--json").stdout)
    assert data["completed"] is True and data["rollback_points"] == ["p3"]
