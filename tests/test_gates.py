"""Quality gates from the ledger: verdicts, configuration, and the gated `ktrdr rollout advance`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.ledger import RunLedger
from ktrdr_core.rollout.gates import (
    FAIL,
    INSUFFICIENT,
    PASS,
    GateConfig,
    GateReport,
    below,
    evaluate_gate,
    exceeds,
)
from ktrdr_core.rollout.settings import STAGES, RolloutSettings
from ktrdr_core.rollout.store import RolloutStore

NOW = time.time()
SETTINGS = RolloutSettings(enabled=True, percentage=10)


def ktrdr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ktrdr_core.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, "KTRDR_ACTOR": "tester"}, timeout=120)


def add_runs(ledger: RunLedger, mode: str, count: int, *, status: str = "success", duration: float = 10.0,
             p50: float | None = 0.3, latency: float | None = None, age: float = 3600.0,
             error_kind: str | None = None, user: str = "u") -> None:
    """Finished runs through the ledger API, started ``age`` seconds ago."""
    for i in range(count):
        ledger.record_run(
            request_id=f"{mode}-{status}-{time.monotonic_ns()}-{i}", user_id=f"{user}{i}", strategy="s",
            mode=mode, status=status, started_at=NOW - age + i, duration_seconds=duration,
            interval_summary={"p50": p50}, cancellation_latency_seconds=latency,
            error="boom" if status == "error" else None, error_kind=error_kind,
        )


def healthy_ledger(candidate_runs: int = 25) -> RunLedger:
    ledger = RunLedger()
    add_runs(ledger, "unified", candidate_runs)
    add_runs(ledger, "legacy", 10, duration=10.5)
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=True)
    return ledger


def verdicts(report: GateReport) -> dict[str, str]:
    return {c.name: c.verdict for c in report.criteria}


# -- verdicts ---------------------------------------------------------------------------


def test_pass_when_every_criterion_is_met() -> None:
    report = evaluate_gate("canary", ledger=healthy_ledger(), settings=SETTINGS, now=NOW)
    assert report.verdict == PASS and report.exit_code == 0, report.to_dict()
    assert set(verdicts(report).values()) == {PASS}
    ratio = next(c for c in report.criteria if c.name.startswith("median duration"))
    assert ratio.measured == pytest.approx(10 / 10.5, abs=1e-3)
    assert report.next_stage == "expanded"


def test_fail_on_error_rate_even_with_other_data_missing() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 24)
    add_runs(ledger, "unified", 1, status="error")  # 1 in 25 = 4 % >= 1 %
    report = evaluate_gate("canary", ledger=ledger, settings=SETTINGS, now=NOW)
    v = verdicts(report)
    assert v["candidate error rate"] == FAIL
    assert v["latest side-by-side comparison"] == INSUFFICIENT  # no comparison, no control runs ...
    assert report.verdict == FAIL and report.exit_code == 1  # ... but FAIL wins


def test_insufficient_data_with_too_few_candidate_runs() -> None:
    report = evaluate_gate("canary", ledger=healthy_ledger(candidate_runs=5), settings=SETTINGS, now=NOW)
    v = verdicts(report)
    assert v["candidate runs"] == INSUFFICIENT and v["candidate error rate"] == INSUFFICIENT
    assert FAIL not in v.values()
    assert report.verdict == INSUFFICIENT and report.exit_code == 3


def test_runs_outside_the_window_do_not_count() -> None:
    ledger = healthy_ledger(candidate_runs=0)
    add_runs(ledger, "unified", 25, age=8 * 86400)
    report = evaluate_gate("canary", ledger=ledger, settings=SETTINGS, now=NOW)
    assert next(c for c in report.criteria if c.name == "candidate runs").measured == 0
    assert report.verdict == INSUFFICIENT


def test_bad_input_failures_are_not_the_modes_fault() -> None:
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 3, status="error", error_kind="bad_input")
    assert evaluate_gate("canary", ledger=ledger, settings=SETTINGS, now=NOW).verdict == PASS
    add_runs(ledger, "unified", 1, status="error", error_kind="exception")
    assert evaluate_gate("canary", ledger=ledger, settings=SETTINGS, now=NOW).verdict == FAIL


@pytest.mark.parametrize(("stage", "candidate_seconds", "verdict"), [
    ("canary", 11.5, PASS),     # 11.5 / 10.5 = 1.095 <= 1.10
    ("canary", 11.6, FAIL),     # 1.105
    ("expanded", 11.0, PASS),   # 1.048 <= 1.05
    ("full", 11.0, FAIL),       # 1.048 > 1.02
])
def test_duration_ratio_per_stage(stage: str, candidate_seconds: float, verdict: str) -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25, duration=candidate_seconds)
    add_runs(ledger, "legacy", 10, duration=10.5)
    report = evaluate_gate(stage, ledger=ledger, settings=SETTINGS, now=NOW)
    assert verdicts(report)["median duration ratio (candidate / control)"] == verdict


def test_cancellation_and_progress_criteria() -> None:
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 2, status="cancelled", latency=0.05)
    report = evaluate_gate("expanded", ledger=ledger, settings=SETTINGS, now=NOW)
    assert verdicts(report)["cancellation latency p95"] == PASS
    add_runs(ledger, "unified", 2, status="cancelled", latency=0.4)
    report = evaluate_gate("expanded", ledger=ledger, settings=SETTINGS, now=NOW)
    assert verdicts(report)["cancellation latency p95"] == FAIL


@pytest.mark.parametrize(("p50", "verdict"), [(0.002, FAIL), (0.1, PASS), (1.0, PASS), (1.5, FAIL)])
def test_progress_interval_bounds(p50: float, verdict: str) -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25, p50=p50)  # 0.002: legacy-style progress flooding
    report = evaluate_gate("canary", ledger=ledger, settings=SETTINGS, now=NOW)
    assert verdicts(report)["median progress interval"] == verdict


def test_not_equivalent_comparison_fails_the_gate() -> None:
    ledger = healthy_ledger()
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=False,
                             differences=[{"field": "val_loss"}])
    report = evaluate_gate("off", ledger=ledger, settings=SETTINGS, now=NOW)
    comparison = next(c for c in report.criteria if c.name == "latest side-by-side comparison")
    assert comparison.verdict == FAIL and "val_loss" in comparison.detail
    assert report.verdict == FAIL


def test_full_uses_older_control_runs_as_the_baseline() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25, duration=10.0)
    add_runs(ledger, "legacy", 10, duration=10.0, age=30 * 86400)  # nobody got legacy lately
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=True)
    report = evaluate_gate("full", ledger=ledger, settings=SETTINGS, now=NOW)
    ratio = next(c for c in report.criteria if c.name.startswith("median duration"))
    assert ratio.verdict == PASS and "any age" in ratio.detail


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=1, max_value=500),
       st.sampled_from([0.1, 0.5, 1.0, 2.5, 10.0]))
def test_boundaries_are_exact(errors: int, runs: int, threshold: float) -> None:
    # integer arithmetic as the reference: errors/runs vs threshold/100 with threshold = k/10
    tenths = round(threshold * 10)
    assert exceeds(errors, runs, threshold) == (errors * 1000 > tenths * runs)
    assert below(errors, runs, threshold) == (errors * 1000 < tenths * runs)


# -- configuration ----------------------------------------------------------------------


def test_gates_configuration_overrides_defaults() -> None:
    config = GateConfig.from_mapping(
        {"window": "30d", "min_runs": 3, "canary": {"error_rate_pct": 50, "duration_ratio": None}},
        source="rollout.json",
    )
    assert config["canary"].min_runs == 3 and config["expanded"].min_runs == 3
    assert config["canary"].error_rate_pct == 50 and config["expanded"].error_rate_pct == 0.5
    ledger = RunLedger()
    add_runs(ledger, "unified", 3, age=20 * 86400)
    add_runs(ledger, "unified", 1, status="error", age=20 * 86400)
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=True)
    report = evaluate_gate("canary", ledger=ledger, settings=SETTINGS, config=config, now=NOW)
    assert report.verdict == PASS, report.to_dict()
    assert "median duration ratio (candidate / control)" not in verdicts(report)


@pytest.mark.parametrize(("gates", "key"), [
    ({"canary": {"error_rate_pct": -1}}, "gates.canary.error_rate_pct"),
    ({"canary": {"error_rate_pct": "1%"}}, "gates.canary.error_rate_pct"),
    ({"min_runs": 0}, "gates.min_runs"),
    ({"window": "a week"}, "gates.window"),
    ({"expanded": {"progress_interval_s": [1.0, 0.1]}}, "gates.expanded.progress_interval_s"),
    ({"full": {"error_rate": 1}}, "gates.full.error_rate"),
    ({"canary": 5}, "gates.canary"),
    ([], "gates"),
])
def test_bad_gate_settings_name_the_file_and_key(gates: Any, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        GateConfig.from_mapping(gates, source="/x/rollout.json")
    assert str(info.value).startswith("/x/rollout.json: ") and f"'{key}" in str(info.value)


# -- the CLI ----------------------------------------------------------------------------


def at_stage(stage: str, **extra: Any) -> RolloutStore:
    store = RolloutStore()
    enabled, pct = STAGES[stage]
    store.set_fields("set_stage", {"enabled": enabled, "percentage": pct, **extra}, reason="test setup")
    return store


def test_gate_cli_exit_codes_and_json(ktrdr_home: Path) -> None:
    at_stage("canary")
    proc = ktrdr("rollout", "gate", "--json")
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == INSUFFICIENT
    healthy_ledger()
    proc = ktrdr("rollout", "gate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout and "candidate error rate" in proc.stdout
    add_runs(RunLedger(), "unified", 1, status="error")
    assert ktrdr("rollout", "gate", "--stage", "expanded").returncode == 1


def test_gate_cli_bad_configuration_is_exit_2_one_line(ktrdr_home: Path) -> None:
    at_stage("canary", gates={"canary": {"error_rate_pct": "low"}})
    proc = ktrdr("rollout", "gate")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gates.canary.error_rate_pct" in lines[0] and "rollout.json" in lines[0]


def test_advance_refuses_on_fail_and_changes_nothing(ktrdr_home: Path) -> None:
    store = at_stage("canary")
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 2, status="error")
    before = store.settings_path.read_bytes(), len(store.history())
    proc = ktrdr("rollout", "advance")
    assert proc.returncode == 1
    assert "refusing to advance canary -> expanded" in proc.stderr
    assert (store.settings_path.read_bytes(), len(store.history())) == before


def test_advance_refuses_on_insufficient_data(ktrdr_home: Path) -> None:
    store = at_stage("canary")
    before = store.settings_path.read_bytes()
    assert ktrdr("rollout", "advance").returncode == 3
    assert store.settings_path.read_bytes() == before


def test_advance_moves_on_when_the_gate_passes(ktrdr_home: Path) -> None:
    store = at_stage("canary")
    healthy_ledger()
    proc = ktrdr("rollout", "advance", "--reason", "week one green")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (store.read().enabled, store.read().percentage, store.read().stage) == (True, 50, "expanded")
    last = store.history()[-1]
    assert (last.action, last.actor) == ("advance", "tester")
    assert "gate canary PASS" in last.reason and "week one green" in last.reason


def test_force_without_reason_is_refused(ktrdr_home: Path) -> None:
    store = at_stage("canary")
    before = store.settings_path.read_bytes()
    proc = ktrdr("rollout", "advance", "--force")
    assert proc.returncode == 2
    assert "--force needs --reason" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert store.settings_path.read_bytes() == before


def test_forced_advance_is_audited_with_the_verdict(ktrdr_home: Path) -> None:
    store = at_stage("expanded")
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 1, status="error")
    proc = ktrdr("rollout", "advance", "--force", "--reason", "CTO sign-off, ticket 42")
    assert proc.returncode == 0, proc.stderr
    assert store.read().percentage == 100
    last = store.history()[-1]
    assert last.action == "advance_forced"
    assert "FAIL" in last.reason and "candidate error rate FAIL" in last.reason
    assert "CTO sign-off, ticket 42" in last.reason


def test_stage_command_sets_flag_and_percentage(ktrdr_home: Path) -> None:
    store = RolloutStore()
    assert ktrdr("rollout", "stage", "expanded", "--reason", "go").returncode == 0
    assert (store.read().enabled, store.read().percentage) == (True, 50)
    assert ktrdr("rollout", "stage", "off").returncode == 0
    assert (store.read().enabled, store.read().percentage) == (False, 0)
    assert [e.action for e in store.history()] == ["set_stage", "set_stage"]
    assert ktrdr("rollout", "stage", "warp").returncode == 2


def test_advance_from_a_custom_percentage_or_full_is_bad_input(ktrdr_home: Path) -> None:
    store = RolloutStore()
    store.set_fields("set_stage", {"enabled": True, "percentage": 25}, reason="odd")
    proc = ktrdr("rollout", "advance")
    assert proc.returncode == 2 and "between stages" in proc.stderr
    at_stage("full")
    proc = ktrdr("rollout", "advance")
    assert proc.returncode == 2 and "last stage" in proc.stderr
