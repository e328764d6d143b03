"""The error-rate alert and the rollout gate count the same failures.

One set of unified runs is fed to both sides: to the metrics through the
same hook the service uses (``MetricsPlugin``) and to the run ledger the gate
reads. The counters are then replayed to ``promtool`` as a steady stream
(the same mix every minute) and the alert's own expression, read from
``deploy/prometheus/alerts.yml``, is evaluated; the gate is evaluated on the
ledger. The ratio the alert compares with its threshold must be the error
rate the gate measures (the gate then judges it with a confidence bound, the
alert with the plain threshold). Users' typos (``bad_input``) are left out on
both sides; runs lost with their process (``interrupted``) count as failures
on both.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.report import RunReport
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.gates import evaluate_gate
from ktrdr_core.rollout.policy import Decision
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.service.metrics import STATUSES, KtrdrMetrics, MetricsPlugin

ALERTS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")


def alert_expr(name: str) -> str:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return str(rule["expr"]).strip()
    raise AssertionError(f"no alert {name}")


def result_for(outcome: str) -> TrainingResult:
    if outcome == "success":
        return TrainingResult(success=True)
    if outcome == "cancelled":
        return TrainingResult.cancelled("cancelled over HTTP")
    kind = "bad_input" if outcome == "bad_input" else "exception"
    return TrainingResult.failed(f"{outcome} on purpose", metadata={"error_kind": kind})


def feed(outcomes: dict[str, int], ledger: RunLedger, metrics: KtrdrMetrics) -> None:
    """Every run to the metrics (as the service would count it) and to the ledger (as the gate reads it)."""
    plugin = MetricsPlugin(metrics)
    decision = Decision(mode="unified", reason="test", bucket=1, candidate=True)
    now = time.time()
    for outcome, count in outcomes.items():
        for i in range(count):
            request = TrainingRequest(strategy="s", user_id=f"user{i}")
            if outcome == "interrupted":  # found by the next start-up, counted then
                metrics.record_interrupted("unified", started=True)
                ledger.record_run(
                    request_id=request.request_id,
                    user_id=request.user_id,
                    strategy="s",
                    mode="unified",
                    status="interrupted",
                    error_kind="interrupted",
                    started_at=now - 60,
                    duration_seconds=1,
                )
                continue
            result = result_for(outcome)
            plugin.training_started(request=request, decision=decision)
            plugin.training_finished(
                request=request,
                decision=decision,
                result=result,
                report=RunReport(
                    request_id=request.request_id,
                    mode="unified",
                    status=result.status,
                    started_at=now - 60,
                    duration_seconds=1.0,
                ),
            )
            ledger.record_run(
                request_id=request.request_id,
                user_id=request.user_id,
                strategy="s",
                mode="unified",
                status=result.status,
                error_kind=(result.metadata or {}).get("error_kind"),
                started_at=now - 60,
                duration_seconds=1,
            )


def promtool_value(metrics: KtrdrMetrics, expr: str, expected: float, tmp_path: Path) -> bool:
    """Whether ``expr``, over the counters replayed as a steady stream for 30 minutes, is ``expected``."""
    series = []
    for status in STATUSES:
        value = metrics.requests_total.labels(implementation="unified", status=status)._value.get()
        series.append(
            {
                "series": f'training_requests_total{{job="ktrdr",implementation="unified",'
                f'status="{status}"}}',
                "values": f"0+{int(value)}x30",
            }
        )
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "20m", "exp_samples": [{"labels": "{}", "value": expected}]}
                ],
            }
        ],
    }
    path = tmp_path / "agree.test.yml"
    path.write_text(yaml.safe_dump(test))
    proc = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is installed by scripts/test")
@pytest.mark.parametrize(
    "outcomes",
    [
        # 1 error in 121 counted runs (0.83 %): typos neither count as failures nor dilute them
        {"success": 110, "cancelled": 10, "error": 1, "bad_input": 60},
        # 2 interrupted in 100 counted runs (2 %): runs lost with their process are failures
        {"success": 98, "interrupted": 2, "bad_input": 5},
        # 1 error + 1 interrupted in 150 (1.33 %)
        {"success": 140, "cancelled": 8, "error": 1, "interrupted": 1},
        # no failures at all, only typos
        {"success": 30, "bad_input": 30},
    ],
)
def test_the_alert_measures_the_error_rate_the_gate_measures(
    outcomes: dict[str, int], tmp_path: Path
) -> None:
    ledger, metrics = RunLedger(), KtrdrMetrics(CollectorRegistry())
    feed(outcomes, ledger, metrics)
    report = evaluate_gate(
        "canary", ledger=ledger, settings=RolloutSettings(enabled=True, percentage=10), config=None
    )
    error_rate = next(c for c in report.criteria if c.name == "candidate error rate")
    failures = outcomes.get("error", 0) + outcomes.get("interrupted", 0)
    counted = sum(outcomes.values()) - outcomes.get("bad_input", 0)
    assert error_rate.measured == pytest.approx(100 * failures / counted)

    expr = alert_expr("UnifiedTrainingHighErrorRate")
    ratio, _, threshold = expr.rpartition(">")
    rate = float(error_rate.measured) / 100  # type: ignore[arg-type]
    in_ppm = f"round(1e6 * ({ratio.strip()}))"  # promtool compares floats exactly
    assert promtool_value(metrics, in_ppm, round(rate * 1e6), tmp_path)
    assert not promtool_value(metrics, in_ppm, round(rate * 1e6) + 1, tmp_path)  # it does compare
    fires = rate > float(threshold)
    assert promtool_value(metrics, f"count({expr}) or vector(0)", 1 if fires else 0, tmp_path)
