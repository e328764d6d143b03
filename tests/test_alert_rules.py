"""The Prometheus alerting rules: promtool checks and unit tests, and their fit with the metrics.

The promtool tests need ``promtool`` (``apt-get install prometheus``). Where it
is missing they skip, except under CI (``CI`` set, and not to 0/false/no),
where they fail: CI must never pass without having run the rule tests. The
structural tests below need nothing but PyYAML and run everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ktrdr_core.service.metrics import (
    CANCELLATION_BUCKETS,
    PROGRESS_DEVIATION_BUCKETS,
    PROGRESS_INTERVAL_BUCKETS,
    KtrdrMetrics,
)

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"
CONFIG = DEPLOY / "prometheus.yml"

PLAN_ALERTS = {
    "UnifiedTrainingHighErrorRate": ("critical", "5m"),
    "UnifiedTrainingSlowPerformance": ("warning", "10m"),
    "UnifiedTrainingSlowCancellation": ("warning", "5m"),
}
EXTRA_ALERTS = {
    "UnifiedTrainingHighCpuUsage",
    "UnifiedTrainingHighMemoryUsage",
    "UnifiedTrainingValLossDegraded",
    "UnifiedTrainingValAccuracyDegraded",
    "UnifiedTrainingProgressInaccurate",
    "UnifiedTrainingProgressTooSlow",
    "UnifiedTrainingProgressTooFast",
    "KtrdrEventLoopLag",
    "KtrdrServiceDown",
}


def promtool() -> str:
    """The promtool path; fail under CI, skip elsewhere, when it is not installed."""
    found = shutil.which("promtool")
    if found:
        return found
    message = (
        "promtool is not installed (apt-get install prometheus, or a release from "
        "prometheus.io); it checks and unit-tests deploy/prometheus/alerts.yml"
    )
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message}; CI must run the alert rule tests")
    pytest.skip(message)


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120)


def rules() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule for group in data["groups"] for rule in group["rules"] if "alert" in rule}


def rule_cases() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERT_TESTS.read_text())
    return [case for test in data["tests"] for case in test["alert_rule_test"]]


def minutes(duration: str) -> float:
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match[1]) * {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}[match[2]]


# -- promtool ---------------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_every_rule() -> None:
    done = run_promtool("check", "rules", ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", ALERT_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_config_accepts_the_sample_config() -> None:
    done = run_promtool("check", "config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


MUTATIONS = {
    # name: (alert, text in alerts.yml, replacement)
    # An un-summed ratio divides each error series by itself.
    "error ratio without sum": (
        "UnifiedTrainingHighErrorRate",
        'sum(rate(training_requests_total{implementation="unified",status=~"error|interrupted"}[5m]))\n'
        "          /\n"
        '          sum(rate(training_requests_total{implementation="unified",status!="bad_input"}[5m]))',
        'rate(training_requests_total{implementation="unified",status=~"error|interrupted"}[5m])\n'
        "          /\n"
        '          rate(training_requests_total{implementation="unified",status!="bad_input"}[5m])',
    ),
    # The gate leaves users' typos out; so must the alert.
    "bad input counted": ("UnifiedTrainingHighErrorRate", ',status!="bad_input"}[5m]))', "}[5m]))"),
    # The gate counts runs lost with their process as failures; so must the alert.
    "bad input as a failure": (
        "UnifiedTrainingHighErrorRate",
        'status=~"error|interrupted"',
        'status=~"error|interrupted|bad_input"',
    ),
    "interrupted not counted": (
        "UnifiedTrainingHighErrorRate",
        'status=~"error|interrupted"',
        'status="error"',
    ),
    "error threshold 5%": ("UnifiedTrainingHighErrorRate", "          > 0.01\n", "          > 0.05\n"),
    "duration ratio 1.05": ("UnifiedTrainingSlowPerformance", "> 1.2\n", "> 1.05\n"),
    "cancellation p95 0.8 s": ("UnifiedTrainingSlowCancellation", ") > 0.5\n", ") > 0.8\n"),
    "cancellation of every mode": (
        "UnifiedTrainingSlowCancellation",
        'cancellation_latency_seconds_bucket{implementation="unified"}',
        "cancellation_latency_seconds_bucket",
    ),
    "progress too slow 1.5 s": ("UnifiedTrainingProgressTooSlow", ") > 1\n", ") > 1.5\n"),
    "progress too fast 0.05 s": ("UnifiedTrainingProgressTooFast", ") < 0.1\n", ") < 0.05\n"),
    "event loop p99 0.09 s": ("KtrdrEventLoopLag", ") > 0.1\n        for: 5m", ") > 0.09\n        for: 5m"),
    "service down without for": ("KtrdrServiceDown", "for: 2m", "for: 0m"),
    "availability 99.6%": ("KtrdrServiceAvailabilityLow", "< 0.995", "< 0.996"),
    "cpu ratio 1.6": (
        "UnifiedTrainingHighCpuUsage",
        'cpu_seconds_count{implementation="legacy"}[1h]))\n          )\n          > 1.3\n',
        'cpu_seconds_count{implementation="legacy"}[1h]))\n          )\n          > 1.6\n',
    ),
    "cpu ratio 1.2": (
        "UnifiedTrainingHighCpuUsage",
        'cpu_seconds_count{implementation="legacy"}[1h]))\n          )\n          > 1.3\n',
        'cpu_seconds_count{implementation="legacy"}[1h]))\n          )\n          > 1.2\n',
    ),
    "memory ratio 1.7": (
        "UnifiedTrainingHighMemoryUsage",
        'memory_bytes_count{implementation="legacy"}[1h]))\n          )\n          > 1.3\n',
        'memory_bytes_count{implementation="legacy"}[1h]))\n          )\n          > 1.7\n',
    ),
    "val_loss ratio 1.15": (
        "UnifiedTrainingValLossDegraded",
        "val_loss_ratio_count[1h]))\n          > 1.05\n",
        "val_loss_ratio_count[1h]))\n          > 1.15\n",
    ),
    "val_loss ratio 1.01": (
        "UnifiedTrainingValLossDegraded",
        "val_loss_ratio_count[1h]))\n          > 1.05\n",
        "val_loss_ratio_count[1h]))\n          > 1.01\n",
    ),
    "val_accuracy ratio 0.9": (
        "UnifiedTrainingValAccuracyDegraded",
        "val_accuracy_ratio_count[1h]))\n          < 0.95\n",
        "val_accuracy_ratio_count[1h]))\n          < 0.9\n",
    ),
    "val_accuracy ratio 1.04": (
        "UnifiedTrainingValAccuracyDegraded",
        "val_accuracy_ratio_count[1h]))\n          < 0.95\n",
        "val_accuracy_ratio_count[1h]))\n          < 1.04\n",
    ),
    "progress deviation 0.1": (
        "UnifiedTrainingProgressInaccurate",
        'accuracy_deviation_bucket{implementation="unified"}[1h]))\n          ) > 0.05\n',
        'accuracy_deviation_bucket{implementation="unified"}[1h]))\n          ) > 0.1\n',
    ),
    "progress deviation of every mode": (
        "UnifiedTrainingProgressInaccurate",
        'ktrdr_progress_accuracy_deviation_bucket{implementation="unified"}',
        "ktrdr_progress_accuracy_deviation_bucket",
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_promtool_tests_catch_a_broken_rule(name: str, tmp_path: Path) -> None:
    """Each mutation of alerts.yml makes that alert's own unit tests fail: they pin the thresholds.

    Only the mutated alert's test cases run, so the failure is theirs (and quick).
    """
    alert, old, new = MUTATIONS[name]
    text = ALERTS.read_text()
    assert text.count(old) == 1, f"mutation {name!r} no longer matches alerts.yml exactly once"
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    tests["tests"] = [
        {**group, "alert_rule_test": [c for c in group["alert_rule_test"] if c["alertname"] == alert]}
        for group in tests["tests"]
        if any(case["alertname"] == alert for case in group["alert_rule_test"])
    ]
    assert tests["tests"], f"no test cases for {alert}"
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests))

    (tmp_path / "alerts.yml").write_text(text)
    control = run_promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert control.returncode == 0, f"{alert}'s tests alone fail unmutated\n{control.stdout}"

    (tmp_path / "alerts.yml").write_text(text.replace(old, new))
    mutated = run_promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert mutated.returncode != 0, f"{name}: {alert}'s tests still pass\n{mutated.stdout}"
    assert f"alertname: {alert}," in mutated.stdout + mutated.stderr


# -- structure (no promtool needed) ----------------------------------------------------------------


def test_the_plans_alerts_and_ours_are_present() -> None:
    found = rules()
    for name, (severity, for_) in PLAN_ALERTS.items():
        assert found[name]["labels"]["severity"] == severity
        assert found[name]["for"] == for_
    assert set(found) >= EXTRA_ALERTS
    assert 'up{job="ktrdr"} == 0' in found["KtrdrServiceDown"]["expr"]
    assert "histogram_quantile(0.99" in found["KtrdrEventLoopLag"]["expr"]
    assert "histogram_quantile(0.95" in found["UnifiedTrainingSlowCancellation"]["expr"]
    slow = found["UnifiedTrainingSlowPerformance"]["expr"]
    assert "training_duration_seconds_sum" in slow and "training_duration_seconds_count" in slow
    # avg() of a histogram's bare name selects nothing: such a rule could never fire.
    assert "avg(" not in slow


def test_every_alert_explains_itself_and_how_to_roll_back() -> None:
    for name, rule in rules().items():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        assert "docs/metrics.md" in annotations["runbook"], name
        if name.startswith("UnifiedTraining"):
            assert "ktrdr rollout set 0" in annotations["runbook"], name
            assert rule["labels"]["implementation"] == "unified", name


def test_every_alert_is_tested_firing_and_quiet_past_its_for() -> None:
    cases = rule_cases()
    for name, rule in rules().items():
        mine = [case for case in cases if case["alertname"] == name]
        firing = [case for case in mine if case.get("exp_alerts")]
        quiet = [case for case in mine if not case.get("exp_alerts")]
        assert firing, f"{name} is never shown firing"
        assert quiet, f"{name} is never shown quiet"
        for_ = minutes(rule.get("for", "0m"))
        assert all(minutes(case["eval_time"]) > for_ for case in firing), name
        for case in firing:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], name
                assert set(alert["exp_annotations"]) == set(rule["annotations"]), name


def test_alerts_read_only_metrics_that_ktrdr_exposes() -> None:
    registry = CollectorRegistry()
    KtrdrMetrics(registry)
    exposed = {sample.name for family in registry.collect() for sample in family.samples}
    exposed |= {  # labelled families show their samples once a label is used
        f"{base}{suffix}"
        for base in (
            "training_duration_seconds",
            "progress_update_interval_seconds",
            "cancellation_latency_seconds",
            "ktrdr_training_cpu_seconds",
            "ktrdr_training_peak_memory_bytes",
            "ktrdr_progress_accuracy_deviation",
        )
        for suffix in ("_bucket", "_sum", "_count")
    } | {"training_requests_total", "active_training_sessions"}
    functions = {"sum", "rate", "by", "le", "instance", "histogram_quantile", "avg_over_time", "absent"}
    for name, rule in rules().items():
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", rule["expr"])
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr):
            if word in functions:
                continue
            assert word == "up" or word in exposed, f"{name} reads {word!r}, which ktrdr never exposes"


def test_alert_thresholds_sit_on_bucket_edges() -> None:
    assert 0.5 in CANCELLATION_BUCKETS
    assert {0.1, 1.0} <= set(PROGRESS_INTERVAL_BUCKETS)
    assert {0.01, 0.05} <= set(PROGRESS_DEVIATION_BUCKETS)


def test_sample_config_scrapes_ktrdr_serve_and_loads_the_rules() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "ktrdr"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
