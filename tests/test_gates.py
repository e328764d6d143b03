"""Quality gates from the ledger: verdicts, configuration, and the gated `ktrdr rollout advance`."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from cli_inprocess import CliRun, run_ktrdr
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.ledger import RunLedger
from ktrdr_core.rollout.gates import (
    FAIL,
    INSUFFICIENT,
    PASS,
    Criterion,
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
WEEKS_AGO = NOW - 30 * 86400
"""A stage entered long enough ago for every stage's time-in-stage criterion."""


def ktrdr(*args: str) -> CliRun:
    return run_ktrdr(*args, env={"KTRDR_ACTOR": "tester"})


def add_runs(
    ledger: RunLedger,
    mode: str,
    count: int,
    *,
    status: str = "success",
    duration: float = 10.0,
    p50: float | None = 0.3,
    latency: float | None = None,
    age: float = 3600.0,
    error_kind: str | None = None,
    user: str = "u",
    cpu: float | None = 9.0,
    rss: int | None = 500_000_000,
    deviation: float | None = 0.001,
    shadow: bool = False,
    val_loss: float | None = 0.9,
    val_accuracy: float | None = 0.6,
) -> list[int]:
    """Finished runs through the ledger API, started ``age`` seconds ago; returns their ids."""
    ids = []
    for i in range(count):
        ids.append(
            ledger.record_run(
                request_id=f"{mode}-{status}-{time.monotonic_ns()}-{i}",
                user_id=f"{user}{i}",
                strategy="s",
                mode=mode,
                status=status,
                started_at=NOW - age + i * 0.01,
                duration_seconds=duration,
                interval_summary={"p50": p50},
                cancellation_latency_seconds=latency,
                error="boom" if status == "error" else None,
                error_kind=error_kind,
                resources={"cpu_seconds": cpu, "cpu_scope": "thread", "peak_rss_bytes": rss},
                progress_max_deviation=deviation,
                shadow=shadow,
                metrics={"val_loss": val_loss, "val_accuracy": val_accuracy},
            )
        )
    return ids


def add_pairs(
    ledger: RunLedger, count: int, *, equivalent: bool = True, val_loss: float = 0.9, age: float = 3600.0
) -> None:
    """Shadow pairs: a control user run, a shadow candidate run, and their comparison."""
    for _ in range(count):
        (control,) = add_runs(ledger, "legacy", 1, age=age, duration=10.5)
        (candidate,) = add_runs(ledger, "unified", 1, age=age, shadow=True, val_loss=val_loss)
        ledger.record_comparison(
            strategy="s",
            control="legacy",
            candidate="unified",
            equivalent=equivalent,
            source="shadow",
            control_run_id=control,
            candidate_run_id=candidate,
            created_at=NOW - age + 1,
        )


def healthy_ledger(candidate_runs: int = 300) -> RunLedger:
    """Enough runs for every canary criterion to decide (0 in 268 proves a rate below 1 %)."""
    ledger = RunLedger()
    add_runs(ledger, "unified", candidate_runs)
    add_runs(ledger, "legacy", 10, duration=10.5)
    add_pairs(ledger, 270)
    return ledger


def verdicts(report: GateReport) -> dict[str, str]:
    return {c.name: c.verdict for c in report.criteria}


def criterion(report: GateReport, start: str) -> Criterion:
    return next(c for c in report.criteria if c.name.startswith(start))


def canary(ledger: RunLedger, **kwargs: Any) -> GateReport:
    return evaluate_gate(
        "canary",
        ledger=ledger,
        settings=SETTINGS,
        now=NOW,
        stage_since=kwargs.pop("stage_since", WEEKS_AGO),
        **kwargs,
    )


# -- verdicts ---------------------------------------------------------------------------


def test_pass_when_every_criterion_is_met() -> None:
    report = canary(healthy_ledger())
    assert report.verdict == PASS and report.exit_code == 0, report.to_dict()
    assert set(verdicts(report).values()) == {PASS}
    ratio = criterion(report, "median duration")
    assert ratio.measured == pytest.approx(10 / 10.5, abs=1e-3)
    assert report.next_stage == "expanded"
    names = set(verdicts(report))
    assert {
        "time in stage",
        "median CPU ratio (candidate / control)",
        "median peak memory ratio (candidate / control)",
        "shadow comparisons not equivalent",
        "model accuracy: val_loss rise (paired)",
        "model accuracy: val_accuracy drop (paired)",
    } <= names
    assert any(name.startswith("progress accuracy") for name in names)


@pytest.mark.parametrize(
    ("errors", "runs", "verdict"),
    [
        (0, 30, INSUFFICIENT),  # upper bound 8.3 %: cannot yet tell below 1 %
        (1, 30, INSUFFICIENT),  # 3.3 %, lower bound 0.7 %: cannot yet tell above 1 % either
        (0, 300, PASS),  # upper bound 0.89 % < 1 %
        (5, 100, FAIL),  # lower bound 2.0 % > 1 %
    ],
)
def test_error_rate_is_judged_by_its_wilson_bounds(errors: int, runs: int, verdict: str) -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", runs - errors)
    add_runs(ledger, "unified", errors, status="error")
    c = criterion(canary(ledger), "candidate error rate")
    assert c.verdict == verdict, c
    low, high = binomtest(errors, runs).proportion_ci(confidence_level=0.90, method="wilson")
    assert (c.low, c.high) == (pytest.approx(low * 100, abs=1e-4), pytest.approx(high * 100, abs=1e-4))
    assert c.measured == pytest.approx(errors / runs * 100)
    assert f"[{c.low:.4g}, {c.high:.4g}]" in c.measured_text()
    if verdict == INSUFFICIENT:
        assert c.runs_needed and f"about {c.runs_needed} more runs" in c.detail
    else:
        assert c.runs_needed is None


def test_zero_and_one_error_in_thirty_need_different_numbers_of_runs() -> None:
    zero, one = RunLedger(), RunLedger(Path(os.environ["KTRDR_HOME"]) / "other.sqlite3")
    add_runs(zero, "unified", 30)
    add_runs(one, "unified", 29)
    add_runs(one, "unified", 1, status="error")
    needed_zero = criterion(canary(zero), "candidate error rate").runs_needed
    needed_one = criterion(canary(one), "candidate error rate").runs_needed
    assert needed_zero == 268 - 30  # 0 errors in 268 runs: the first n with upper bound < 1 %
    assert needed_one is not None and needed_one < needed_zero  # 3.3 % heads for FAIL, sooner


def test_fail_on_error_rate_even_with_other_data_missing() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 95, cpu=None, rss=None)
    add_runs(ledger, "unified", 5, status="error")  # 5 %, lower bound 2 % > 1 %
    report = canary(ledger)
    v = verdicts(report)
    assert v["candidate error rate"] == FAIL
    assert v["latest side-by-side comparison"] == INSUFFICIENT  # no comparison, no control runs ...
    assert report.verdict == FAIL and report.exit_code == 1  # ... but FAIL wins


def test_insufficient_data_with_too_few_candidate_runs() -> None:
    report = canary(healthy_ledger(candidate_runs=5))
    v = verdicts(report)
    assert v["candidate runs"] == INSUFFICIENT and v["candidate error rate"] == INSUFFICIENT
    assert FAIL not in v.values()
    assert report.verdict == INSUFFICIENT and report.exit_code == 3


def test_runs_outside_the_window_do_not_count() -> None:
    ledger = healthy_ledger(candidate_runs=0)
    add_runs(ledger, "unified", 25, age=8 * 86400)
    report = canary(ledger)
    assert criterion(report, "candidate runs").measured == 0
    assert report.verdict == INSUFFICIENT


def test_shadow_runs_are_never_user_traffic() -> None:
    ledger = healthy_ledger(candidate_runs=0)
    add_runs(ledger, "unified", 400, shadow=True)
    add_runs(ledger, "unified", 50, status="error", shadow=True)
    report = canary(ledger)
    assert criterion(report, "candidate runs").measured == 0
    assert criterion(report, "candidate error rate").measured is None


def test_bad_input_failures_are_not_the_modes_fault() -> None:
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 3, status="error", error_kind="bad_input")
    assert canary(ledger).verdict == PASS
    add_runs(ledger, "unified", 20, status="error", error_kind="exception")
    assert canary(ledger).verdict == FAIL


def test_time_in_stage_names_the_date_it_can_pass_from() -> None:
    ledger = healthy_ledger()
    entered = NOW - 2 * 86400
    report = canary(ledger, stage_since=entered)
    c = criterion(report, "time in stage")
    assert c.verdict == INSUFFICIENT and report.verdict == INSUFFICIENT
    assert c.measured == pytest.approx(2.0)
    ready = dt.datetime.fromtimestamp(entered + 7 * 86400, tz=dt.timezone.utc)
    assert f"can pass from {ready.isoformat(timespec='seconds').replace('+00:00', ' UTC')}" in c.detail
    unknown = criterion(canary(ledger, stage_since=None), "time in stage")
    assert unknown.verdict == INSUFFICIENT and "audit log" in unknown.detail
    expanded = evaluate_gate(
        "expanded", ledger=ledger, settings=SETTINGS, now=NOW, stage_since=NOW - 10 * 86400
    )
    assert criterion(expanded, "time in stage").verdict == INSUFFICIENT  # expanded lasts 2 weeks
    assert "time in stage" not in verdicts(evaluate_gate("off", ledger=ledger, settings=SETTINGS, now=NOW))


@pytest.mark.parametrize(
    ("stage", "candidate_seconds", "verdict"),
    [
        ("canary", 11.5, PASS),  # 11.5 / 10.5 = 1.095 <= 1.10
        ("canary", 11.6, FAIL),  # 1.105
        ("expanded", 11.0, PASS),  # 1.048 <= 1.05
        ("full", 11.0, FAIL),  # 1.048 > 1.02
    ],
)
def test_duration_ratio_per_stage(stage: str, candidate_seconds: float, verdict: str) -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25, duration=candidate_seconds)
    add_runs(ledger, "legacy", 10, duration=10.5)
    report = evaluate_gate(stage, ledger=ledger, settings=SETTINGS, now=NOW)
    assert verdicts(report)["median duration ratio (candidate / control)"] == verdict


def test_noisy_durations_are_judged_by_the_bootstrap_interval() -> None:
    rng = random.Random(7)
    ledger = RunLedger()
    for _ in range(8):  # true ratio 1.0, 20 % run-to-run noise: the interval straddles 1.10
        add_runs(ledger, "unified", 1, duration=10 * rng.lognormvariate(0, 0.2))
        add_runs(ledger, "legacy", 1, duration=10 * rng.lognormvariate(0, 0.2))
    c = criterion(canary(ledger), "median duration")
    assert c.verdict == INSUFFICIENT, c
    assert c.low is not None and c.high is not None and c.low < 1.10 < c.high
    assert c.runs_needed and "more runs each side" in c.detail
    for _ in range(8):  # a candidate clearly 50 % slower
        add_runs(ledger, "unified", 3, duration=15 * rng.lognormvariate(0, 0.05))
    c = criterion(canary(ledger), "median duration")
    assert c.verdict == FAIL and c.low is not None and c.low > 1.10, c


def test_cpu_and_memory_ratios_are_gated() -> None:
    ledger = healthy_ledger()
    assert criterion(canary(ledger), "median CPU ratio").verdict == PASS
    add_runs(ledger, "unified", 400, cpu=20.0, rss=900_000_000)  # 2.2x CPU, 1.8x memory
    report = canary(ledger)
    assert criterion(report, "median CPU ratio").verdict == FAIL
    assert criterion(report, "median peak memory ratio").verdict == FAIL
    unmeasured = RunLedger(Path(os.environ["KTRDR_HOME"]) / "old.sqlite3")
    add_runs(unmeasured, "unified", 30, cpu=None, rss=None)
    add_runs(unmeasured, "legacy", 30, cpu=None, rss=None)
    c = criterion(canary(unmeasured), "median CPU ratio")
    assert c.verdict == INSUFFICIENT and "before resource measurement" in c.detail


def test_progress_accuracy_is_gated_at_one_point() -> None:
    ledger = healthy_ledger()
    assert criterion(canary(ledger), "progress accuracy").verdict == PASS
    add_runs(ledger, "unified", 400, deviation=0.08)  # 8 points off
    c = criterion(canary(ledger), "progress accuracy")
    assert c.verdict == FAIL and c.unit == "points" and c.measured == pytest.approx(8.0)


def test_model_accuracy_uses_shadow_pairs_and_says_when_they_are_missing() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 300)
    add_runs(ledger, "legacy", 10)
    report = canary(ledger)
    c = criterion(report, "model accuracy: val_loss")
    assert c.verdict == INSUFFICIENT and "no shadow pairs" in c.detail and "not comparable" in c.detail
    add_pairs(ledger, 25, val_loss=0.99)  # the candidate's val_loss 10 % worse on the same requests
    report = canary(ledger)
    c = criterion(report, "model accuracy: val_loss")
    assert c.verdict == FAIL and c.measured == pytest.approx(10.0, abs=0.01)
    assert criterion(report, "model accuracy: val_accuracy").verdict == PASS


def test_shadow_pairs_decide_the_comparison_criterion() -> None:
    ledger = healthy_ledger()
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=False)
    report = canary(ledger)  # a manual comparison does not count when shadow pairs exist
    assert criterion(report, "shadow comparisons").verdict == PASS
    add_pairs(ledger, 30, equivalent=False)
    c = criterion(canary(ledger), "shadow comparisons")
    assert c.verdict == FAIL and c.measured == pytest.approx(10.0)


def test_with_too_few_pairs_in_the_window_the_latest_of_any_age_are_used() -> None:
    ledger = RunLedger()  # at 100 % no run is control-routed, so no new pairs arrive
    add_pairs(ledger, 30, age=20 * 86400)
    add_pairs(ledger, 5)
    c = criterion(canary(ledger), "shadow comparisons")
    assert "any age" in c.detail and "35 shadow pairs" in c.detail


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
    report = canary(ledger)
    assert verdicts(report)["median progress interval"] == verdict


def test_not_equivalent_comparison_fails_the_gate() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25)
    ledger.record_comparison(
        strategy="s",
        control="legacy",
        candidate="unified",
        equivalent=False,
        differences=[{"field": "val_loss"}],
    )
    report = evaluate_gate("off", ledger=ledger, settings=SETTINGS, now=NOW)
    comparison = criterion(report, "latest side-by-side comparison")
    assert comparison.verdict == FAIL and "val_loss" in comparison.detail
    assert report.verdict == FAIL


def test_full_uses_older_control_runs_as_the_baseline() -> None:
    ledger = RunLedger()
    add_runs(ledger, "unified", 25, duration=10.0)
    add_runs(ledger, "legacy", 10, duration=10.0, age=30 * 86400)  # nobody got legacy lately
    report = evaluate_gate("full", ledger=ledger, settings=SETTINGS, now=NOW)
    ratio = criterion(report, "median duration")
    assert ratio.verdict == PASS and "any age" in ratio.detail


@given(
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=1, max_value=500),
    st.sampled_from([0.1, 0.5, 1.0, 2.5, 10.0]),
)
def test_boundaries_are_exact(errors: int, runs: int, threshold: float) -> None:
    # integer arithmetic as the reference: errors/runs vs threshold/100 with threshold = k/10
    tenths = round(threshold * 10)
    assert exceeds(errors, runs, threshold) == (errors * 1000 > tenths * runs)
    assert below(errors, runs, threshold) == (errors * 1000 < tenths * runs)


# -- configuration ----------------------------------------------------------------------


def test_gates_configuration_overrides_defaults() -> None:
    off = {
        key: None
        for key in (
            "duration_ratio",
            "cpu_ratio",
            "memory_ratio",
            "model_accuracy_pct",
            "progress_accuracy_pct",
            "time_in_stage",
        )
    }
    config = GateConfig.from_mapping(
        {"window": "30d", "min_runs": 3, "canary": {"error_rate_pct": 50, **off}},
        source="rollout.json",
    )
    assert config["canary"].min_runs == 3 and config["expanded"].min_runs == 3
    assert config["canary"].error_rate_pct == 50 and config["expanded"].error_rate_pct == 0.5
    assert config["expanded"].time_in_stage == "14d" and config["canary"].time_in_stage is None
    ledger = RunLedger()
    add_runs(ledger, "unified", 6, age=20 * 86400)  # 0 in 6: upper bound 31 % < 50 %
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=True)
    report = evaluate_gate("canary", ledger=ledger, settings=SETTINGS, config=config, now=NOW)
    assert report.verdict == PASS, report.to_dict()
    assert "median duration ratio (candidate / control)" not in verdicts(report)
    assert "time in stage" not in verdicts(report)


@pytest.mark.parametrize(
    ("gates", "key"),
    [
        ({"canary": {"error_rate_pct": -1}}, "gates.canary.error_rate_pct"),
        ({"canary": {"error_rate_pct": "1%"}}, "gates.canary.error_rate_pct"),
        ({"min_runs": 0}, "gates.min_runs"),
        ({"window": "a week"}, "gates.window"),
        ({"expanded": {"progress_interval_s": [1.0, 0.1]}}, "gates.expanded.progress_interval_s"),
        ({"full": {"error_rate": 1}}, "gates.full.error_rate"),
        ({"canary": 5}, "gates.canary"),
        ({"canary": {"time_in_stage": "a week"}}, "gates.canary.time_in_stage"),
        ({"cpu_ratio": 0}, "gates.cpu_ratio"),
        ({"min_pairs": 0}, "gates.min_pairs"),
        ([], "gates"),
    ],
)
def test_bad_gate_settings_name_the_file_and_key(gates: Any, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        GateConfig.from_mapping(gates, source="/x/rollout.json")
    assert str(info.value).startswith("/x/rollout.json: ") and f"'{key}" in str(info.value)


# -- the CLI ----------------------------------------------------------------------------


def at_stage(stage: str, *, days_ago: float = 30, **extra: Any) -> RolloutStore:
    """The rollout at ``stage``, entered ``days_ago`` (the audit entry is back-dated)."""
    store = RolloutStore()
    enabled, pct = STAGES[stage]
    store.set_fields("set_stage", {"enabled": enabled, "percentage": pct, **extra}, reason="test setup")
    entries = store.audit_path.read_text().splitlines()
    last = json.loads(entries[-1])
    last["timestamp"] = dt.datetime.fromtimestamp(NOW - days_ago * 86400, tz=dt.timezone.utc).isoformat(
        timespec="seconds"
    )
    store.audit_path.write_text("\n".join([*entries[:-1], json.dumps(last)]) + "\n")
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
    assert "0 [0, 0.8938] %" in proc.stdout and "one-sided 95 % bounds" in proc.stdout
    add_runs(RunLedger(), "unified", 30, status="error")
    assert ktrdr("rollout", "gate", "--stage", "expanded").returncode == 1


def test_gate_cli_time_in_stage_counts_from_the_audit_log(ktrdr_home: Path) -> None:
    at_stage("canary", days_ago=3)
    healthy_ledger()
    proc = ktrdr("rollout", "gate", "--json")
    assert proc.returncode == 3
    (c,) = [c for c in json.loads(proc.stdout)["criteria"] if c["name"] == "time in stage"]
    assert c["verdict"] == INSUFFICIENT and c["measured"] == pytest.approx(3, abs=0.01)
    assert "can pass from" in c["detail"]


def test_gate_cli_bad_configuration_is_exit_2_one_line(ktrdr_home: Path) -> None:
    at_stage("canary", gates={"canary": {"error_rate_pct": "low"}})
    proc = ktrdr("rollout", "gate")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gates.canary.error_rate_pct" in lines[0] and "rollout.json" in lines[0]


def test_advance_refuses_on_fail_and_changes_nothing(ktrdr_home: Path) -> None:
    store = at_stage("canary")
    ledger = healthy_ledger()
    add_runs(ledger, "unified", 20, status="error")
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
    add_runs(ledger, "unified", 20, status="error")
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
