"""The training Prometheus metrics (docs/metrics.md), fed by MetricsPlugin through a real TrainingManager.

Most tests use a fresh registry so counts start at zero; a few check the
process-wide :data:`ktrdr_core.service.metrics.REGISTRY` that the service exposes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import threading
import time
from typing import Any

import prometheus_client
import pytest
from inprocess_modes import StepMode, plugin_manager_with
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ktrdr_core import (
    RolloutPolicy,
    ThreadingCancellationToken,
    TrainingManager,
    TrainingRequest,
    TrainingResult,
)
from ktrdr_core.plugins import get_plugin_manager
from ktrdr_core.report import RunReport
from ktrdr_core.rollout.policy import Decision
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.service import metrics as metrics_module
from ktrdr_core.service.metrics import (
    CANCELLATION_BUCKETS,
    PROGRESS_INTERVAL_BUCKETS,
    KtrdrMetrics,
    MetricsPlugin,
    ProgressIntervalSink,
    event_loop_lag_monitor,
)

FIVE = (
    "training_requests_total",
    "training_duration_seconds",
    "active_training_sessions",
    "progress_update_interval_seconds",
    "cancellation_latency_seconds",
)
SECRET_USER = "alice-the-very-private-user"


def manager_with(*modes: Any, metrics: KtrdrMetrics, percentage: int = 0) -> TrainingManager:
    pm = plugin_manager_with(*modes)
    info = pm.register_checked(
        MetricsPlugin(metrics), name="ktrdr-metrics", distribution="ktrdr-core", version="test"
    )
    assert info.error is None, info.error
    policy = RolloutPolicy(settings=RolloutSettings(enabled=True, percentage=percentage))
    return TrainingManager(pm, policy_provider=lambda: policy)


@pytest.fixture
def metrics() -> KtrdrMetrics:
    return KtrdrMetrics(CollectorRegistry())


def value(metrics: KtrdrMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def families(registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_runs_show_up_in_the_exposition_with_the_plans_names_and_labels(metrics: KtrdrMetrics) -> None:
    manager = manager_with(
        StepMode("legacy", fail_at=2), StepMode("unified", steps=4, delay=0.01), metrics=metrics
    )
    request = TrainingRequest(strategy="s", user_id=SECRET_USER)
    assert manager.train(request, mode="unified").success
    assert manager.train(request, mode="unified").success
    assert manager.train(request, mode="legacy").status == "error"

    found = families(metrics.registry)
    # text_string_to_metric_families names a counter family without its _total suffix.
    assert {"training_requests", *FIVE[1:]} <= set(found)
    assert found["training_requests"].type == "counter"
    assert found["training_duration_seconds"].type == "histogram"
    assert found["active_training_sessions"].type == "gauge"
    assert found["progress_update_interval_seconds"].type == "histogram"
    assert found["cancellation_latency_seconds"].type == "histogram"

    assert value(metrics, "training_requests_total", implementation="unified", status="success") == 2
    assert value(metrics, "training_requests_total", implementation="legacy", status="error") == 1
    # Series are created at zero for every status, so rate() sees the first error.
    assert value(metrics, "training_requests_total", implementation="unified", status="error") == 0
    assert value(metrics, "training_requests_total", implementation="legacy", status="success") == 0
    assert value(metrics, "training_duration_seconds_count", implementation="unified") == 2
    assert value(metrics, "training_duration_seconds_count", implementation="legacy") == 1
    unified_seconds = value(metrics, "training_duration_seconds_sum", implementation="unified")
    assert unified_seconds is not None and unified_seconds >= 2 * 4 * 0.01  # 4 sleeps of 10 ms a run
    # 4 updates per unified run -> 3 intervals each; the failing legacy run reported twice -> 1.
    assert value(metrics, "progress_update_interval_seconds_count", implementation="unified") == 6
    assert value(metrics, "progress_update_interval_seconds_count", implementation="legacy") == 1
    assert value(metrics, "active_training_sessions", implementation="unified") == 0
    assert value(metrics, "active_training_sessions", implementation="legacy") == 0
    # Nobody was cancelled: the series exists, empty.
    assert value(metrics, "cancellation_latency_seconds_count", implementation="unified") == 0


def test_rollout_routing_labels_by_the_decided_mode(metrics: KtrdrMetrics) -> None:
    manager = manager_with(StepMode("legacy"), StepMode("unified"), metrics=metrics, percentage=100)
    manager.train(TrainingRequest(strategy="s", user_id="bob"))
    assert value(metrics, "training_requests_total", implementation="unified", status="success") == 1
    assert value(metrics, "training_requests_total", implementation="legacy", status="success") is None


def test_active_sessions_counts_a_running_training(metrics: KtrdrMetrics) -> None:
    seen: list[float | None] = []
    mode = StepMode(
        "unified",
        steps=1,
        on_step=lambda step: seen.append(
            value(metrics, "active_training_sessions", implementation="unified")
        ),
    )
    manager = manager_with(mode, StepMode("legacy"), metrics=metrics)
    manager.train(TrainingRequest(strategy="s"), mode="unified")
    assert seen == [1.0]
    assert value(metrics, "active_training_sessions", implementation="unified") == 0


def test_concurrent_trainings_add_up_in_the_gauge(metrics: KtrdrMetrics) -> None:
    release = threading.Event()
    both_running = threading.Barrier(3, timeout=10)

    def wait(step: int) -> None:
        both_running.wait()
        release.wait(10)

    manager = manager_with(StepMode("unified", steps=1, on_step=wait), metrics=metrics)
    threads = [
        threading.Thread(
            target=manager.train, args=(TrainingRequest(strategy="s"),), kwargs={"mode": "unified"}
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    both_running.wait()
    assert value(metrics, "active_training_sessions", implementation="unified") == 2
    release.set()
    for thread in threads:
        thread.join(10)
    assert value(metrics, "active_training_sessions", implementation="unified") == 0
    assert value(metrics, "training_requests_total", implementation="unified", status="success") == 2


def test_cancellation_is_counted_and_its_latency_observed(metrics: KtrdrMetrics) -> None:
    manager = manager_with(StepMode("legacy", steps=1000, delay=0.005), metrics=metrics)
    token = ThreadingCancellationToken()
    threading.Timer(0.05, token.cancel, kwargs={"reason": "stop"}).start()
    result = manager.train(TrainingRequest(strategy="s"), cancel=token)
    assert result.status == "cancelled"
    assert value(metrics, "training_requests_total", implementation="legacy", status="cancelled") == 1
    assert value(metrics, "cancellation_latency_seconds_count", implementation="legacy") == 1
    latency = value(metrics, "cancellation_latency_seconds_sum", implementation="legacy")
    assert latency is not None and 0 <= latency < 1.0
    # A 5 ms step stops well inside a second: the 1 s bucket holds it.
    assert value(metrics, "cancellation_latency_seconds_bucket", implementation="legacy", le="1.0") == 1
    assert value(metrics, "active_training_sessions", implementation="legacy") == 0


def test_no_label_is_ever_a_user_id(metrics: KtrdrMetrics) -> None:
    manager = manager_with(StepMode("legacy"), StepMode("unified"), metrics=metrics, percentage=50)
    for user in (SECRET_USER, "bob", "carol", "dave"):
        manager.train(TrainingRequest(strategy="s", user_id=user))
    allowed = {"implementation", "status", "le", "version", "python", "result"}
    label_names = {
        label for family in metrics.registry.collect() for sample in family.samples for label in sample.labels
    }
    assert label_names <= allowed
    assert {"implementation", "status", "le"} <= label_names
    assert not {"user", "user_id", "request_id"} & label_names
    text = generate_latest(metrics.registry).decode()
    assert SECRET_USER not in text and "bob" not in text


def test_progress_sink_observes_each_gap_once() -> None:
    metrics = KtrdrMetrics(CollectorRegistry())
    child = metrics.progress_interval_seconds.labels(implementation="unified")
    times = iter([10.0, 10.25, 10.3125, 11.8125, 11.8125])  # exact in binary: no rounding at edges
    sink = ProgressIntervalSink(child, clock=lambda: next(times))
    for _ in range(5):
        sink(1, 1, {"progress_type": "batch"})

    def bucket(le: str) -> float | None:
        return value(metrics, "progress_update_interval_seconds_bucket", implementation="unified", le=le)

    # Gaps: 0.25, 0.0625, 1.5, 0.0 -> four observations; the first update has no gap before it.
    assert value(metrics, "progress_update_interval_seconds_count", implementation="unified") == 4
    assert value(metrics, "progress_update_interval_seconds_sum", implementation="unified") == 1.8125
    assert bucket("0.05") == 1  # 0.0
    assert bucket("0.075") == 2  # + 0.0625
    assert bucket("0.1") == 2
    assert bucket("0.25") == 3  # + 0.25 (le is inclusive)
    assert bucket("1.0") == 3
    assert bucket("1.5") == 4


def test_buckets_have_edges_on_the_alert_thresholds() -> None:
    assert {0.05, 0.1, 0.3, 1.0, 2.0} <= set(PROGRESS_INTERVAL_BUCKETS)
    assert sum(1 for b in PROGRESS_INTERVAL_BUCKETS if 0.05 <= b <= 2.0) >= 12
    assert {0.01, 0.1, 0.5, 1.0} <= set(CANCELLATION_BUCKETS)
    assert list(PROGRESS_INTERVAL_BUCKETS) == sorted(PROGRESS_INTERVAL_BUCKETS)
    assert list(CANCELLATION_BUCKETS) == sorted(CANCELLATION_BUCKETS)


def test_an_unknown_status_counts_as_error_and_the_gauge_still_drops(metrics: KtrdrMetrics) -> None:
    plugin = MetricsPlugin(metrics)
    request = TrainingRequest(strategy="s")
    decision = Decision(mode="unified", reason="test", bucket=1)
    plugin.training_started(request=request, decision=decision)
    weird = TrainingResult(success=False, status="exploded", error="?")  # type: ignore[arg-type]
    report = RunReport(request_id="r", mode="unified", status="error", started_at=0.0, duration_seconds=4.0)
    plugin.training_finished(request=request, decision=decision, result=weird, report=report)
    assert value(metrics, "training_requests_total", implementation="unified", status="error") == 1
    assert value(metrics, "training_requests_total", implementation="unified", status="exploded") is None
    assert value(metrics, "training_duration_seconds_bucket", implementation="unified", le="2.5") == 0
    assert value(metrics, "training_duration_seconds_bucket", implementation="unified", le="5.0") == 1
    assert value(metrics, "active_training_sessions", implementation="unified") == 0


def test_rollout_percentage_gauge(metrics: KtrdrMetrics) -> None:
    metrics.record_rollout(RolloutPolicy(settings=RolloutSettings(enabled=True, percentage=10)))
    assert value(metrics, "ktrdr_rollout_percentage") == 10
    metrics.record_rollout(RolloutPolicy(settings=RolloutSettings(enabled=False, percentage=50)))
    assert value(metrics, "ktrdr_rollout_percentage") == 0

    current: dict[str, RolloutPolicy | None] = {
        "policy": RolloutPolicy(settings=RolloutSettings(enabled=True, percentage=50))
    }

    def provider() -> RolloutPolicy:
        policy = current["policy"]
        if policy is None:
            raise ValueError("malformed rollout file")
        return policy

    metrics.track_rollout(provider)
    assert value(metrics, "ktrdr_rollout_percentage") == 50
    current["policy"] = RolloutPolicy(settings=RolloutSettings(enabled=True, percentage=100))
    assert value(metrics, "ktrdr_rollout_percentage") == 100
    current["policy"] = None
    broken = value(metrics, "ktrdr_rollout_percentage")
    assert broken is not None and math.isnan(broken)
    assert b"ktrdr_rollout_percentage NaN" in generate_latest(metrics.registry)


def test_event_loop_lag_sees_a_blocked_loop(metrics: KtrdrMetrics) -> None:
    async def scenario() -> None:
        async with event_loop_lag_monitor(metrics=metrics, interval=0.01):
            await asyncio.sleep(0.05)
            time.sleep(0.25)  # a handler doing CPU work on the loop
            await asyncio.sleep(0.05)

    asyncio.run(scenario())
    count = value(metrics, "ktrdr_event_loop_lag_seconds_count")
    assert count is not None and count >= 3
    below = value(metrics, "ktrdr_event_loop_lag_seconds_bucket", le="0.1")
    assert below is not None and below <= count - 1  # the blocked wake-up is above 0.1 s
    total = value(metrics, "ktrdr_event_loop_lag_seconds_sum")
    assert total is not None and total >= 0.2


def test_process_registry_is_dedicated_and_survives_reimport() -> None:
    names = {family.name for family in metrics_module.REGISTRY.collect()}
    assert {
        "training_requests",
        *FIVE[1:],
        "ktrdr_event_loop_lag_seconds",
        "ktrdr_rollout_percentage",
        "ktrdr_build",
    } <= names
    # Not in prometheus-client's global registry: nothing else in the process can collide.
    assert (
        prometheus_client.REGISTRY.get_sample_value("active_training_sessions", {"implementation": "unified"})
        is None
    )
    assert MetricsPlugin().metrics is metrics_module.METRICS
    body, content_type = metrics_module.exposition()
    assert content_type.startswith("text/plain") and b"ktrdr_build_info{" in body

    # A second copy of the module (what a re-import under another name does) builds its own
    # registry instead of colliding with "Duplicated timeseries" in a global one.
    spec = importlib.util.spec_from_file_location("ktrdr_metrics_copy", metrics_module.__file__)
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    assert copy.REGISTRY is not metrics_module.REGISTRY
    assert b"# TYPE training_requests_total counter" in copy.exposition()[0]


def test_process_registry_counts_runs_through_the_default_plugin() -> None:
    registry = metrics_module.REGISTRY

    def successes() -> float:
        return (
            registry.get_sample_value(
                "training_requests_total", {"implementation": "metrics-default", "status": "success"}
            )
            or 0.0
        )

    before = successes()
    manager = manager_with(StepMode("metrics-default"), metrics=MetricsPlugin().metrics)
    manager.train(TrainingRequest(strategy="s"), mode="metrics-default")
    assert successes() == before + 1


def test_metrics_plugin_is_not_registered_by_default() -> None:
    pm = get_plugin_manager()
    assert pm.get_plugin("ktrdr-metrics") is None
    assert not any(isinstance(plugin, MetricsPlugin) for plugin in pm.get_plugins())
