"""Rollout settings from the environment and the rollout file; the audit log."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core import ConfigurationError, RolloutPolicy
from ktrdr_core.rollout.settings import RolloutSettings, stage_for
from ktrdr_core.rollout.store import RolloutStore


@pytest.mark.parametrize("value", ["abc", "150", "-1", "12.5", "10%", "1e2"])
def test_malformed_percentage_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="UNIFIED_TRAINING_ROLLOUT_PERCENTAGE"):
        RolloutPolicy.from_env({"UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": value})


@given(st.integers(0, 100))
def test_every_whole_percentage_is_accepted(pct: int) -> None:
    env = {"KTRDR_HOME": "/nonexistent", "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": f" {pct} "}
    assert RolloutPolicy.from_env(env).settings.percentage == pct


@pytest.mark.parametrize(
    ("raw", "enabled"),
    [("true", True), ("TRUE", True), (" True ", True), ("false", False), ("1", False), ("yes", False)],
)
def test_flag_is_true_only_for_true(raw: str, enabled: bool) -> None:
    assert RolloutPolicy.from_env({"USE_UNIFIED_TRAINING": raw}).settings.enabled is enabled


def test_a_yes_flag_is_explained_not_guessed() -> None:
    decision = RolloutPolicy.from_env({"USE_UNIFIED_TRAINING": "yes"}).decide("alice", ["legacy", "unified"])
    assert decision.mode == "legacy"
    assert "'yes'" in decision.reason


def test_rollback_user_ids_is_a_comma_list() -> None:
    policy = RolloutPolicy.from_env({"ROLLBACK_USER_IDS": "user123, user456,,"})
    assert policy.settings.excluded_users == {"user123", "user456"}


def test_same_control_and_candidate_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="must differ"):
        RolloutPolicy.from_env({"KTRDR_ROLLOUT_CANDIDATE": "legacy"})


def test_env_wins_over_file_and_sources_say_so(ktrdr_home: Path) -> None:
    RolloutStore(ktrdr_home).set_percentage(30, reason="test")
    RolloutStore(ktrdr_home).set_enabled(True, reason="test")
    env = {"KTRDR_HOME": str(ktrdr_home), "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "0"}
    policy = RolloutPolicy.from_env(env)
    assert policy.settings.percentage == 0
    assert policy.settings.enabled is True
    assert policy.sources == {
        "enabled": "file",
        "percentage": "env",
        "excluded_users": "default",
        "control": "default",
        "candidate": "default",
    }


def test_malformed_rollout_file_names_the_file(ktrdr_home: Path) -> None:
    ktrdr_home.mkdir(parents=True)
    (ktrdr_home / "rollout.json").write_text('{"percentage": 150}')
    with pytest.raises(ConfigurationError, match=r"rollout\.json.*percentage"):
        RolloutPolicy.from_env({"KTRDR_HOME": str(ktrdr_home)})
    (ktrdr_home / "rollout.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        RolloutPolicy.from_env({"KTRDR_HOME": str(ktrdr_home)})


def test_invalid_change_is_refused_and_leaves_file_and_log_alone(ktrdr_home: Path) -> None:
    store = RolloutStore(ktrdr_home)
    store.set_percentage(10, reason="canary")
    before = store.settings_path.read_text()
    with pytest.raises(ConfigurationError):
        store.set_percentage(150, reason="oops")
    assert store.settings_path.read_text() == before
    assert len(store.history()) == 1


def test_audit_log_records_who_when_old_new_why(ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_ACTOR", "carol")
    store = RolloutStore(ktrdr_home)
    store.set_percentage(10, reason="canary starts")
    store.set_percentage(50, reason="canary passed")
    assert store.set_percentage(50, reason="again") is None  # no-op writes nothing
    store.exclude("bob", reason="bob hit a bug")
    entries = store.history()
    assert [(e.action, e.old, e.new) for e in entries] == [
        ("set_percentage", None, 10),
        ("set_percentage", 10, 50),
        ("exclude_user", None, ["bob"]),
    ]
    assert all(e.actor == "carol" and e.timestamp for e in entries)
    assert entries[1].reason == "canary passed"


def _bump(home: str, user: str) -> None:
    RolloutStore(Path(home)).exclude(user, reason="concurrent")


def test_concurrent_changes_from_processes_are_all_kept(ktrdr_home: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(str(ktrdr_home), f"u{i}")) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    data = json.loads((ktrdr_home / "rollout.json").read_text())
    assert sorted(data["excluded_users"]) == [f"u{i}" for i in range(6)]
    assert len(RolloutStore(ktrdr_home).history()) == 6


def test_torn_audit_line_is_skipped(ktrdr_home: Path) -> None:
    store = RolloutStore(ktrdr_home)
    store.set_percentage(10, reason="ok")
    with store.audit_path.open("a") as handle:
        handle.write('{"timestamp": "2026-')
    assert [e.new for e in store.history()] == [10]


@pytest.mark.parametrize(
    ("enabled", "pct", "stage"),
    [
        (False, 50, "off"),
        (True, 0, "off"),
        (True, 10, "canary"),
        (True, 50, "expanded"),
        (True, 100, "full"),
        (True, 30, "custom"),
    ],
)
def test_stage_names(enabled: bool, pct: int, stage: str) -> None:
    assert stage_for(enabled, pct) == stage
    assert RolloutSettings(enabled=enabled, percentage=pct).stage == stage


def test_empty_variables_count_as_unset(ktrdr_home: Path) -> None:
    store = RolloutStore(ktrdr_home)
    store.set_enabled(True, reason="test")
    store.exclude("bob", reason="test")
    env = {
        "KTRDR_HOME": str(ktrdr_home),
        "USE_UNIFIED_TRAINING": "",
        "ROLLBACK_USER_IDS": " ",
        "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "",
    }
    policy = RolloutPolicy.from_env(env)
    assert policy.settings.enabled is True and policy.settings.excluded_users == {"bob"}
    assert policy.sources["enabled"] == "file" and policy.sources["excluded_users"] == "file"
