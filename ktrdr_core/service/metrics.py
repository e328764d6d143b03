"""Prometheus metrics for the migration: the five training metrics, plus service health.

The names and labels are fixed (docs/metrics.md lists them), so the alerting
rules (``deploy/prometheus/alerts.yml``) and the rollout gates read them
unchanged:

========================================  ==========================  =========
metric                                    labels                      type
========================================  ==========================  =========
``training_requests_total``               ``implementation, status``  counter
``training_duration_seconds``             ``implementation``          histogram
``active_training_sessions``              ``implementation``          gauge
``progress_update_interval_seconds``      ``implementation``          histogram
``cancellation_latency_seconds``          ``implementation``          histogram
``ktrdr_event_loop_lag_seconds``          (none)                      histogram
``ktrdr_rollout_percentage``              (none)                      gauge
``ktrdr_build_info``                      ``version, python``         info
``ktrdr_training_cpu_seconds``            ``implementation``          histogram
``ktrdr_training_peak_memory_bytes``      ``implementation``          histogram
``ktrdr_training_val_loss``               ``implementation``          histogram
``ktrdr_training_val_accuracy``           ``implementation``          histogram
``ktrdr_progress_accuracy_deviation``     ``implementation``          histogram
``ktrdr_shadow_comparisons_total``        ``result``                  counter
``ktrdr_shadow_val_loss_ratio``           (none)                      histogram
``ktrdr_shadow_val_accuracy_ratio``       (none)                      histogram
========================================  ==========================  =========

The ``ktrdr_training_*`` and ``ktrdr_progress_*`` families are the rest of the
migration's monitoring (resource usage, model accuracy, progress accuracy);
the ``ktrdr_shadow_*`` families compare the two implementations on the same
requests (shadow pairs), the only like-for-like view of model accuracy.

``implementation`` is the execution mode's name (``legacy``, ``unified``,
``cloud``…), a small fixed set. ``status`` is one of :data:`STATUSES`. A user
id is never a label: it would make one time series per user.

Everything is registered once per process, in the dedicated registry
:data:`REGISTRY` (not prometheus-client's global one), which ``ktrdr serve``
exposes at ``GET /metrics``. Tests that want a clean slate build their own
:class:`KtrdrMetrics` on a fresh :class:`~prometheus_client.CollectorRegistry`.

Nothing here is active by default: the service registers the hooks with
``pm.register(MetricsPlugin(), name="ktrdr-metrics")``. See docs/metrics.md.
"""

from __future__ import annotations

import logging
import math
import platform
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from ktrdr_core._version import __version__
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.service.looplag import EventLoopLagMonitor

if TYPE_CHECKING:
    from ktrdr_core.report import RunReport
    from ktrdr_core.request import TrainingRequest
    from ktrdr_core.result import TrainingResult
    from ktrdr_core.rollout.policy import Decision, RolloutPolicy

logger = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("success", "error", "bad_input", "cancelled", "interrupted")
"""Values of ``training_requests_total``'s ``status`` label.

``success`` — the mode returned a successful result; ``error`` — the mode
raised or returned a failed result; ``bad_input`` — it failed because the
request cannot work anywhere (an unknown strategy, a missing data file: the
user's mistake, not the mode's); ``cancelled`` — it stopped because its token
fired (Ctrl-C, HTTP cancel, deadline); ``interrupted`` — the process running
it died (counted by the next service start-up that finds its ledger row).
An unknown status is counted as ``error`` so the label set stays fixed.

The error-rate alert and the rollout gate count the same failures:
``error`` and ``interrupted`` out of everything but ``bad_input``.
"""

FAILURE_STATUSES: tuple[str, ...] = ("error", "interrupted")
"""The statuses the error-rate alert counts as failures (as the gate does)."""
NOT_COUNTED_STATUSES: tuple[str, ...] = ("bad_input",)
"""The status the error-rate alert leaves out of the total (as the gate does)."""


def request_status(result: TrainingResult) -> str:
    """The ``status`` label for a finished result."""
    if result.status == "error" and (result.metadata or {}).get("error_kind") == "bad_input":
        return "bad_input"
    return result.status if result.status in STATUSES else "error"


LABEL_NAMES: frozenset[str] = frozenset({"implementation", "status", "result"})
"""Every label name the training metrics use (``le`` and the build info's aside)."""

# -- buckets -----------------------------------------------------------------
# Each histogram has a bucket boundary exactly on every threshold an alert or a
# quality gate compares a quantile with, so ``histogram_quantile`` crosses the
# threshold where the data does, not somewhere inside a wide bucket.

DURATION_BUCKETS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
)
"""Trainings last seconds (a smoke test) to hours (a large multi-symbol run)."""

PROGRESS_INTERVAL_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    5.0,
    10.0,
)
"""Fine between 0.05 s and 2 s around the ~300 ms target, with edges on the
alert's 0.1 s and 1 s; the millisecond buckets show the legacy mode's flooding."""

CANCELLATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""10 ms–1 s in detail (target < 100 ms, alert > 500 ms); up to 30 s for a
stuck remote worker stopped by force after its grace period."""

CPU_SECONDS_BUCKETS: tuple[float, ...] = DURATION_BUCKETS
"""CPU seconds of a training: about its wall time on one thread."""

MEMORY_BUCKETS: tuple[float, ...] = tuple(float(2**power) for power in range(26, 37))
"""64 MiB to 64 GiB, doubling: the alert compares means, not quantiles."""

VAL_LOSS_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0)
VAL_ACCURACY_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0)

PROGRESS_DEVIATION_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""A fraction of the work: edges at the target (0.01) and the alert (0.05)."""

SHADOW_RESULTS: tuple[str, ...] = ("equivalent", "different", "candidate_failed", "cancelled", "skipped")
"""Values of ``ktrdr_shadow_comparisons_total``'s ``result`` label."""

PAIR_RATIO_BUCKETS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0, 1.01, 1.05, 1.1, 1.25, 2.0)
"""Candidate / control on a shadow pair: edges at the target (1 %) and the alert (5 %) each way.
Ratios, not differences: a histogram's ``_sum`` must only grow for ``rate()`` to read it."""

EVENT_LOOP_LAG_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""A healthy loop lags a millisecond or two; the alert's edge is 0.1 s."""


class KtrdrMetrics:
    """The metric objects, registered in one registry.

    The process-wide instance is :data:`METRICS` in :data:`REGISTRY`; build
    another only with a registry of your own (tests), or prometheus-client
    will refuse the duplicate names.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests_total = Counter(
            "training_requests_total",
            "Training requests that finished, by implementation and status "
            "(success, error, bad_input, cancelled, interrupted).",
            ["implementation", "status"],
            registry=registry,
        )
        self.duration_seconds = Histogram(
            "training_duration_seconds",
            "Training duration in seconds, from the mode's start to its return.",
            ["implementation"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.active_sessions = Gauge(
            "active_training_sessions",
            "Trainings running now, by implementation.",
            ["implementation"],
            registry=registry,
        )
        self.progress_interval_seconds = Histogram(
            "progress_update_interval_seconds",
            "Seconds between consecutive progress updates of one training.",
            ["implementation"],
            buckets=PROGRESS_INTERVAL_BUCKETS,
            registry=registry,
        )
        self.cancellation_latency_seconds = Histogram(
            "cancellation_latency_seconds",
            "Seconds from the cancel request to the mode actually stopping.",
            ["implementation"],
            buckets=CANCELLATION_BUCKETS,
            registry=registry,
        )
        self.event_loop_lag_seconds = Histogram(
            "ktrdr_event_loop_lag_seconds",
            "How late the service's event loop woke up from a timed sleep.",
            buckets=EVENT_LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.rollout_percentage = Gauge(
            "ktrdr_rollout_percentage",
            "Share of users (0-100) routed to the candidate implementation; 0 while the rollout is disabled.",
            registry=registry,
        )
        self.cpu_seconds = Histogram(
            "ktrdr_training_cpu_seconds",
            "CPU seconds of one training (its process when it ran alone, else its thread).",
            ["implementation"],
            buckets=CPU_SECONDS_BUCKETS,
            registry=registry,
        )
        self.peak_memory_bytes = Histogram(
            "ktrdr_training_peak_memory_bytes",
            "Peak resident memory of the process during one training that ran alone in it.",
            ["implementation"],
            buckets=MEMORY_BUCKETS,
            registry=registry,
        )
        self.val_loss = Histogram(
            "ktrdr_training_val_loss",
            "Validation loss of each successful training.",
            ["implementation"],
            buckets=VAL_LOSS_BUCKETS,
            registry=registry,
        )
        self.val_accuracy = Histogram(
            "ktrdr_training_val_accuracy",
            "Validation accuracy of each successful training.",
            ["implementation"],
            buckets=VAL_ACCURACY_BUCKETS,
            registry=registry,
        )
        self.progress_deviation = Histogram(
            "ktrdr_progress_accuracy_deviation",
            "Largest |reported - actual| fraction of work over one training's progress updates.",
            ["implementation"],
            buckets=PROGRESS_DEVIATION_BUCKETS,
            registry=registry,
        )
        self.shadow_comparisons_total = Counter(
            "ktrdr_shadow_comparisons_total",
            "Shadow pairs (the candidate run in the background on a control-routed request) "
            "compared, by result.",
            ["result"],
            registry=registry,
        )
        for result in SHADOW_RESULTS:
            self.shadow_comparisons_total.labels(result=result)
        self.shadow_val_loss_ratio = Histogram(
            "ktrdr_shadow_val_loss_ratio",
            "On each shadow pair: candidate val_loss / control val_loss (above 1: the candidate is worse).",
            buckets=PAIR_RATIO_BUCKETS,
            registry=registry,
        )
        self.shadow_val_accuracy_ratio = Histogram(
            "ktrdr_shadow_val_accuracy_ratio",
            "On each shadow pair: candidate val_accuracy / control val_accuracy (below 1: worse).",
            buckets=PAIR_RATIO_BUCKETS,
            registry=registry,
        )
        self.build_info = Info("ktrdr_build", "The running ktrdr-core.", registry=registry)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self._initialised: set[str] = set()
        self._lock = threading.Lock()

    def initialise(self, implementation: str) -> None:
        """Create ``implementation``'s series at zero, once.

        A series that springs into existence at 1 hides its first increase
        from ``rate()``; created at 0, the first error counts. The service
        may call this for every installed mode at start-up.
        """
        with self._lock:
            if implementation in self._initialised:
                return
            self._initialised.add(implementation)
        for status in STATUSES:
            self.requests_total.labels(implementation=implementation, status=status)
        self.duration_seconds.labels(implementation=implementation)
        self.active_sessions.labels(implementation=implementation)
        self.progress_interval_seconds.labels(implementation=implementation)
        self.cancellation_latency_seconds.labels(implementation=implementation)
        for family in (
            self.cpu_seconds,
            self.peak_memory_bytes,
            self.val_loss,
            self.val_accuracy,
            self.progress_deviation,
        ):
            family.labels(implementation=implementation)

    def record_run_quality(self, implementation: str, result: TrainingResult, report: RunReport) -> None:
        """Resources, model accuracy and progress accuracy of one finished run."""
        resources = getattr(report, "resources", None) or {}
        if isinstance(resources.get("cpu_seconds"), (int, float)):
            self.cpu_seconds.labels(implementation=implementation).observe(resources["cpu_seconds"])
        if isinstance(resources.get("peak_rss_bytes"), int):
            self.peak_memory_bytes.labels(implementation=implementation).observe(resources["peak_rss_bytes"])
        deviation = getattr(report, "progress_max_deviation", None)
        if isinstance(deviation, (int, float)):
            self.progress_deviation.labels(implementation=implementation).observe(deviation)
        if result.status == "success":
            for key, family in (("val_loss", self.val_loss), ("val_accuracy", self.val_accuracy)):
                value = result.training_metrics.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    family.labels(implementation=implementation).observe(value)

    def record_shadow(
        self, result: str, *, val_loss_ratio: float | None = None, val_accuracy_ratio: float | None = None
    ) -> None:
        """One compared shadow pair (``result`` in :data:`SHADOW_RESULTS`)."""
        self.shadow_comparisons_total.labels(result=result if result in SHADOW_RESULTS else "different").inc()
        for value, family in (
            (val_loss_ratio, self.shadow_val_loss_ratio),
            (val_accuracy_ratio, self.shadow_val_accuracy_ratio),
        ):
            if value is not None and math.isfinite(value) and value >= 0:
                family.observe(value)

    def record_interrupted(self, implementation: str, *, started: bool) -> None:
        """Count a run found interrupted at start-up; one that never started is not a request outcome."""
        self.initialise(implementation)
        if started:
            self.requests_total.labels(implementation=implementation, status="interrupted").inc()

    def record_rollout(self, policy: RolloutPolicy) -> None:
        """Set ``ktrdr_rollout_percentage`` from the policy in force."""
        settings = policy.settings
        self.rollout_percentage.set(settings.percentage if settings.enabled else 0)

    def track_rollout(self, policy_provider: Callable[[], RolloutPolicy]) -> None:
        """Read the rollout percentage at every scrape (the file may change under us).

        A provider that raises (a malformed rollout file) yields NaN for that
        scrape rather than breaking ``/metrics``.
        """

        def current() -> float:
            try:
                settings = policy_provider().settings
            except Exception as exc:  # noqa: BLE001 - a bad rollout file must not break /metrics
                logger.warning("could not read the rollout policy for the metrics: %s", exc)
                logger.debug("traceback of the rollout policy read", exc_info=True)
                return math.nan
            return float(settings.percentage if settings.enabled else 0)

        self.rollout_percentage.set_function(current)


REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry ``ktrdr serve`` exposes at ``GET /metrics``."""

METRICS = KtrdrMetrics(REGISTRY)
"""The process-wide metrics, registered once in :data:`REGISTRY`."""


def exposition(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The text exposition of ``registry`` (default :data:`REGISTRY`) and its content type."""
    return generate_latest(registry if registry is not None else REGISTRY), CONTENT_TYPE_LATEST


class ProgressIntervalSink:
    """A progress sink observing the time between consecutive updates of one request."""

    def __init__(self, histogram: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._histogram = histogram
        self._clock = clock
        self._last: float | None = None

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        now = self._clock()
        if self._last is not None:
            self._histogram.observe(max(0.0, now - self._last))
        self._last = now


class MetricsPlugin:
    """Hook implementations that feed the training metrics.

    Not registered by default; the service does
    ``pm.register(MetricsPlugin(), name="ktrdr-metrics")``. Progress intervals
    are observed live by a sink, so a long training shows up while it runs,
    not only when it ends.
    """

    def __init__(self, metrics: KtrdrMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else METRICS

    @hookimpl
    def progress_sinks(self, request: TrainingRequest, decision: Decision) -> list[ProgressIntervalSink]:
        """One sink per request, so intervals never span two trainings."""
        histogram = self.metrics.progress_interval_seconds.labels(implementation=decision.mode)
        return [ProgressIntervalSink(histogram)]

    @hookimpl
    def training_started(self, request: TrainingRequest, decision: Decision) -> None:
        self.metrics.initialise(decision.mode)
        self.metrics.active_sessions.labels(implementation=decision.mode).inc()

    @hookimpl
    def training_finished(
        self,
        request: TrainingRequest,
        decision: Decision,
        result: TrainingResult,
        report: RunReport,
    ) -> None:
        implementation = decision.mode
        m = self.metrics
        try:
            status = request_status(result)
            m.requests_total.labels(implementation=implementation, status=status).inc()
            m.duration_seconds.labels(implementation=implementation).observe(report.duration_seconds)
            if report.cancellation_latency_seconds is not None:
                m.cancellation_latency_seconds.labels(implementation=implementation).observe(
                    report.cancellation_latency_seconds
                )
            m.record_run_quality(implementation, result, report)
        finally:
            m.active_sessions.labels(implementation=implementation).dec()


def event_loop_lag_monitor(*, metrics: KtrdrMetrics | None = None, **options: Any) -> EventLoopLagMonitor:
    """An :class:`~ktrdr_core.service.looplag.EventLoopLagMonitor` feeding ``ktrdr_event_loop_lag_seconds``.

    The service starts it on its loop (``async with`` or ``start()``/``stop()``);
    a handler doing CPU work on the loop instead of ``asyncio.to_thread``
    shows up at once (the service would look hung). ``options`` go to the
    monitor (``interval``, ``warn_above``, ``keep``).
    """
    histogram = (metrics if metrics is not None else METRICS).event_loop_lag_seconds
    return EventLoopLagMonitor(on_sample=histogram.observe, **options)
